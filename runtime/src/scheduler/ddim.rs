//! `DdimScheduler`: deterministic DDIM (η = 0), as diffusers' `DDIMScheduler`.

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::scheduler::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::scheduler::schedule::{arange, betas, cumprod_alphas, linspace, round};
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

/// diffusers' DDIM/Euler timestep spacing (integer-valued, highest first).
pub(crate) fn spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    n: usize,
    offset: usize,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => linspace(0.0, (train - 1) as f64, n)
            .into_iter()
            .rev()
            .map(round)
            .collect(),
        TimestepSpacing::Leading => {
            let ratio = train / n;
            (0..n).rev().map(|i| (i * ratio + offset) as f64).collect()
        }
        TimestepSpacing::Trailing => arange(train as f64, 0.0, -(train as f64 / n as f64))
            .into_iter()
            .map(|t| round(t) - 1.0)
            .collect(),
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

    fn step(
        &mut self,
        model_output: Tensor<B, 4>,
        step: usize,
        sample: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let train = self.config.num_train_timesteps;
        let t = self.timesteps[step] as i64;
        let prev_t = t - (train / self.num_inference_steps) as i64;
        let a_t = self.alphas_cumprod[t.clamp(0, train as i64 - 1) as usize];
        let a_prev = if prev_t >= 0 {
            self.alphas_cumprod[prev_t as usize]
        } else {
            self.final_alpha_cumprod
        };
        let b_t = 1.0 - a_t;
        // x̂₀ = c_x·x + c_o·out and ε̂ = e_x·x + e_o·out for each prediction type.
        let ((c_x, c_o), (e_x, e_o)) = match self.config.prediction_type {
            PredictionType::Epsilon => ((1.0 / a_t.sqrt(), -(b_t.sqrt()) / a_t.sqrt()), (0.0, 1.0)),
            PredictionType::Sample => ((0.0, 1.0), (1.0 / b_t.sqrt(), -(a_t.sqrt()) / b_t.sqrt())),
            PredictionType::VPrediction => ((a_t.sqrt(), -(b_t.sqrt())), (b_t.sqrt(), a_t.sqrt())),
        };
        let (s0, s1) = (a_prev.sqrt(), (1.0 - a_prev).sqrt());
        if self.config.clip_sample {
            let r = self.config.clip_sample_range as f32;
            let x0 = lincomb(c_x, sample.clone(), c_o, model_output.clone()).clamp(-r, r);
            let eps = lincomb(e_x, sample, e_o, model_output);
            lincomb(s0, x0, s1, eps)
        } else {
            lincomb(
                s0 * c_x + s1 * e_x,
                sample,
                s0 * c_o + s1 * e_o,
                model_output,
            )
        }
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
