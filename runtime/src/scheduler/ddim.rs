//! `DdimScheduler`: deterministic DDIM (η = 0), as diffusers' `DDIMScheduler`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::scheduler::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::scheduler::schedule::{betas, cumprod_alphas, spaced_timesteps};
use crate::scheduler::{check_steps, lincomb, Scheduler};

/// DDIM with η = 0: x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε̂.
#[derive(Clone, Debug)]
pub struct DdimScheduler {
    config: SchedulerConfig,
    spacing: TimestepSpacing,
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    timesteps: Vec<f64>,
    num_inference_steps: usize,
}

impl DdimScheduler {
    /// Builds the schedule (timestep spacing defaults to `leading`).
    pub fn new(config: &SchedulerConfig) -> Self {
        let alphas_cumprod = cumprod_alphas(&betas(config));
        let final_alpha_cumprod = if config.set_alpha_to_one {
            1.0
        } else {
            alphas_cumprod[0]
        };
        Self {
            spacing: config.timestep_spacing.unwrap_or(TimestepSpacing::Leading),
            config: config.clone(),
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps: Vec::new(),
            num_inference_steps: 0,
        }
    }

    /// ᾱ of every training timestep.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }
}

impl<B: Backend> Scheduler<B> for DdimScheduler {
    fn set_timesteps(&mut self, n: usize) -> Result<(), RuntimeError> {
        let train = self.config.num_train_timesteps;
        check_steps(n, train)?;
        self.num_inference_steps = n;
        self.timesteps = spaced_timesteps(self.spacing, train, n, self.config.steps_offset);
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(&self, sample: Tensor<B, 4>, _step: usize) -> Tensor<B, 4> {
        sample
    }

    /// One DDIM step (η = 0), numbered as diffusers' `DDIMScheduler.step`; the equation is
    /// (12) of Song et al., "Denoising Diffusion Implicit Models" (2021).
    fn step(
        &mut self,
        model_output: Tensor<B, 4>,
        step: usize,
        sample: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let train = self.config.num_train_timesteps;
        // 1. The previous timestep.
        let timestep = self.timesteps[step] as i64;
        let prev_timestep = timestep - (train / self.num_inference_steps) as i64;
        // 2. ᾱ_t and ᾱ_{t−1} (below 0: the final ᾱ).
        let alpha_prod_t = self.alphas_cumprod[timestep.clamp(0, train as i64 - 1) as usize];
        let alpha_prod_t_prev = if prev_timestep >= 0 {
            self.alphas_cumprod[prev_timestep as usize]
        } else {
            self.final_alpha_cumprod
        };
        let beta_prod_t = 1.0 - alpha_prod_t;
        // 3. The predicted original sample x̂₀ ("predicted x_0" of eq. 12) and ε̂, each as
        //    coefficients of (sample, model_output).
        let (a, b) = (alpha_prod_t.sqrt(), beta_prod_t.sqrt());
        let (pred_original_sample, pred_epsilon) = match self.config.prediction_type {
            // x̂₀ = (x_t − √β_t·ε)/√ᾱ_t, ε̂ = ε.
            PredictionType::Epsilon => (Lin(1.0 / a, -b / a), Lin(0.0, 1.0)),
            // x̂₀ = output, ε̂ = (x_t − √ᾱ_t·x̂₀)/√β_t.
            PredictionType::Sample => (Lin(0.0, 1.0), Lin(1.0 / b, -a / b)),
            // x̂₀ = √ᾱ_t·x_t − √β_t·v, ε̂ = √ᾱ_t·v + √β_t·x_t.
            PredictionType::VPrediction => (Lin(a, -b), Lin(b, a)),
        };
        // 5.–6. η = 0, so σ_t = 0: the "direction pointing to x_t" is √(1 − ᾱ_{t−1})·ε̂.
        let direction = (1.0 - alpha_prod_t_prev).sqrt();
        // 7. x_{t−1} = √ᾱ_{t−1}·x̂₀ + √(1 − ᾱ_{t−1})·ε̂.
        let x0_coef = alpha_prod_t_prev.sqrt();
        if self.config.clip_sample {
            // 4. Clip x̂₀ (then it is no longer linear in the inputs).
            let r = self.config.clip_sample_range as f32;
            let x0 = pred_original_sample
                .apply(sample.clone(), model_output.clone())
                .clamp(-r, r);
            let eps = pred_epsilon.apply(sample, model_output);
            lincomb(x0_coef, x0, direction, eps)
        } else {
            // One pass over the tensors: the two combinations folded together.
            Lin(
                x0_coef * pred_original_sample.0 + direction * pred_epsilon.0,
                x0_coef * pred_original_sample.1 + direction * pred_epsilon.1,
            )
            .apply(sample, model_output)
        }
    }
}

/// Coefficients (on `sample`, on `model_output`) of a tensor linear in a step's inputs.
#[derive(Clone, Copy, Debug)]
struct Lin(f64, f64);

impl Lin {
    fn apply<B: Backend>(self, sample: Tensor<B, 4>, model_output: Tensor<B, 4>) -> Tensor<B, 4> {
        lincomb(self.0, sample, self.1, model_output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::config::BetaSchedule;

    type B = crate::device::Cpu;

    #[test]
    fn deci_trailing_30_steps() {
        // diffusers' `DDIMScheduler` with trailing spacing (Lin et al. 2024, table 2), cosine +
        // v + zero SNR, 30 steps: 999, 966, 932, …, 32.
        let config = SchedulerConfig {
            beta_schedule: BetaSchedule::SquaredCosCapV2,
            prediction_type: PredictionType::VPrediction,
            rescale_betas_zero_snr: true,
            timestep_spacing: Some(TimestepSpacing::Trailing),
            set_alpha_to_one: false,
            clip_sample: false,
            ..SchedulerConfig::default()
        };
        let mut s = DdimScheduler::new(&config);
        Scheduler::<B>::set_timesteps(&mut s, 30).unwrap();
        let ts = Scheduler::<B>::timesteps(&s);
        assert_eq!(ts.len(), 30);
        assert_eq!(&ts[..4], &[999.0, 966.0, 932.0, 899.0]);
        assert_eq!(ts[29], 32.0);
        assert!(!ts.contains(&0.0));
        assert_eq!(s.alphas_cumprod()[999], 0.0);
    }

    #[test]
    fn too_many_steps_is_an_error() {
        let mut s = DdimScheduler::new(&SchedulerConfig::default());
        assert!(Scheduler::<B>::set_timesteps(&mut s, 1001).is_err());
        assert!(Scheduler::<B>::set_timesteps(&mut s, 0).is_err());
    }
}
