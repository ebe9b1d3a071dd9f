//! `EulerDiscreteScheduler`: Euler's method on the probability-flow ODE in σ, as diffusers'
//! `EulerDiscreteScheduler` (no churn, linear sigma interpolation).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::scheduler::config::{PredictionType, SchedulerConfig, TimestepSpacing};
use crate::scheduler::schedule::{
    betas, cumprod_alphas, linspace, sigmas, spaced_timesteps, step_sigmas,
};
use crate::scheduler::{check_steps, lincomb, Scheduler};

/// Euler sampler over σ_t = √((1−ᾱ_t)/ᾱ_t); the latents live at scale √(σ²+1).
#[derive(Clone, Debug)]
pub struct EulerDiscreteScheduler {
    config: SchedulerConfig,
    spacing: TimestepSpacing,
    train_sigmas: Vec<f64>,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
}

impl EulerDiscreteScheduler {
    /// Builds the schedule (timestep spacing defaults to `linspace`). With zero terminal SNR
    /// the last ᾱ is set to 2⁻²⁴ so that σ stays finite, as diffusers does.
    pub fn new(config: &SchedulerConfig) -> Self {
        let mut acp = cumprod_alphas(&betas(config));
        if config.rescale_betas_zero_snr {
            let last = acp.len() - 1;
            acp[last] = 2f64.powi(-24);
        }
        Self {
            spacing: config.timestep_spacing.unwrap_or(TimestepSpacing::Linspace),
            config: config.clone(),
            train_sigmas: sigmas(&acp),
            timesteps: Vec::new(),
            sigmas: Vec::new(),
        }
    }

    /// The inference sigmas (one more than the timesteps: the final sigma).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }
}

impl<B: Backend> Scheduler<B> for EulerDiscreteScheduler {
    fn set_timesteps(&mut self, n: usize) -> Result<(), RuntimeError> {
        let train = self.config.num_train_timesteps;
        check_steps(n, train)?;
        // diffusers keeps Euler's timesteps as float32 (fractional for linspace).
        self.timesteps = match self.spacing {
            TimestepSpacing::Linspace => linspace(0.0, (train - 1) as f64, n)
                .into_iter()
                .rev()
                .map(|t| t as f32 as f64)
                .collect(),
            s => spaced_timesteps(s, train, n, self.config.steps_offset),
        };
        self.sigmas = step_sigmas(
            &self.timesteps,
            &self.train_sigmas,
            self.config.final_sigmas_type,
        );
        Ok(())
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        let max = self.sigmas.iter().copied().fold(0.0, f64::max);
        match self.spacing {
            TimestepSpacing::Linspace | TimestepSpacing::Trailing => max,
            TimestepSpacing::Leading => (max * max + 1.0).sqrt(),
        }
    }

    fn scale_model_input(&self, sample: Tensor<B, 4>, step: usize) -> Tensor<B, 4> {
        let s = self.sigmas[step];
        sample.mul_scalar((1.0 / (s * s + 1.0).sqrt()) as f32)
    }

    fn step(
        &mut self,
        model_output: Tensor<B, 4>,
        step: usize,
        sample: Tensor<B, 4>,
    ) -> Tensor<B, 4> {
        let sigma = self.sigmas[step];
        let dt = self.sigmas[step + 1] - sigma;
        // x̂₀ = c_x·x + c_o·out; x_prev = x + (x − x̂₀)/σ · dt.
        let (c_x, c_o) = match self.config.prediction_type {
            PredictionType::Epsilon => (1.0, -sigma),
            PredictionType::Sample => (0.0, 1.0),
            PredictionType::VPrediction => {
                let n = sigma * sigma + 1.0;
                (1.0 / n, -sigma / n.sqrt())
            }
        };
        let k = dt / sigma;
        lincomb(1.0 + (1.0 - c_x) * k, sample, -c_o * k, model_output)
    }
}
