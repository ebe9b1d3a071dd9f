//! `DpmSolverMultistepScheduler`: DPM-Solver++ (multistep, order 1 or 2), as diffusers'
//! `DPMSolverMultistepScheduler` with its defaults for Stable Diffusion (order 2, midpoint,
//! lower-order final steps, final sigma 0).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::scheduler::config::{
    FinalSigmas, PredictionType, SchedulerConfig, SolverType, TimestepSpacing,
};
use crate::scheduler::schedule::{
    betas, cumprod_alphas, dpm_spaced_timesteps, sigmas, step_sigmas,
};
use crate::scheduler::{check_steps, lincomb, Scheduler};

/// DPM-Solver++ over the data prediction x̂₀, with the last `solver_order` predictions kept.
#[derive(Debug)]
pub struct DpmSolverMultistepScheduler<B: Backend> {
    config: SchedulerConfig,
    spacing: TimestepSpacing,
    train_sigmas: Vec<f64>,
    /// λ_t = log α_t − log σ_t of every training step.
    lambdas: Vec<f64>,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    /// x̂₀ predictions, most recent last.
    history: Vec<Tensor<B, 4>>,
    lower_order_nums: usize,
}

impl<B: Backend> DpmSolverMultistepScheduler<B> {
    /// Builds the schedule (timestep spacing defaults to `linspace`; zero terminal SNR sets the
    /// last ᾱ to 2⁻²⁴ as diffusers does).
    pub fn new(config: &SchedulerConfig) -> Self {
        let mut acp = cumprod_alphas(&betas(config));
        if config.rescale_betas_zero_snr {
            let last = acp.len() - 1;
            acp[last] = 2f64.powi(-24);
        }
        let lambdas = acp
            .iter()
            .map(|a| a.sqrt().ln() - (1.0 - a).sqrt().ln())
            .collect();
        Self {
            spacing: config.timestep_spacing.unwrap_or(TimestepSpacing::Linspace),
            config: config.clone(),
            train_sigmas: sigmas(&acp),
            lambdas,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            history: Vec::new(),
            lower_order_nums: 0,
        }
    }

    /// The inference sigmas (one more than the timesteps: the final sigma).
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// (α_t, σ_t) of the variance-preserving process for a sigma.
    fn alpha_sigma(sigma: f64) -> (f64, f64) {
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        (alpha, sigma * alpha)
    }

    fn lambda(sigma: f64) -> f64 {
        let (a, s) = Self::alpha_sigma(sigma);
        a.ln() - s.ln()
    }
}

impl<B: Backend> Scheduler<B> for DpmSolverMultistepScheduler<B> {
    fn set_timesteps(&mut self, n: usize) -> Result<(), RuntimeError> {
        let train = self.config.num_train_timesteps;
        check_steps(n, train)?;
        let min = self.config.lambda_min_clipped.unwrap_or(f64::NEG_INFINITY);
        // searchsorted(flip(λ), λ_min): how many of the (increasing) flipped λ are below it.
        let clipped = self.lambdas.iter().filter(|&&l| l < min).count();
        let last = train - clipped;
        self.timesteps =
            dpm_spaced_timesteps(self.spacing, train, last, n, self.config.steps_offset);
        self.sigmas = step_sigmas(
            &self.timesteps,
            &self.train_sigmas,
            self.config.final_sigmas_type,
        );
        self.history.clear();
        self.lower_order_nums = 0;
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
        let n = self.timesteps.len();
        let cfg = &self.config;
        let lower_final = step == n - 1
            && (cfg.euler_at_final
                || (cfg.lower_order_final && n < 15)
                || cfg.final_sigmas_type == FinalSigmas::Zero);
        // (diffusers' `lower_order_second` only changes third-order steps: not implemented.)

        // Data prediction x̂₀ at the current sigma.
        let (alpha_s, sigma_s) = Self::alpha_sigma(self.sigmas[step]);
        let x0 = match cfg.prediction_type {
            PredictionType::Epsilon => lincomb(
                1.0 / alpha_s,
                sample.clone(),
                -sigma_s / alpha_s,
                model_output,
            ),
            PredictionType::Sample => model_output,
            PredictionType::VPrediction => lincomb(alpha_s, sample.clone(), -sigma_s, model_output),
        };
        self.history.push(x0.clone());
        if self.history.len() > cfg.solver_order {
            self.history.remove(0);
        }

        let sigma_next = self.sigmas[step + 1];
        let (alpha_t, sigma_t) = Self::alpha_sigma(sigma_next);
        let lambda_t = Self::lambda(sigma_next);
        let lambda_s0 = Self::lambda(self.sigmas[step]);
        let h = lambda_t - lambda_s0;
        let em1 = (-h).exp() - 1.0;
        // σ_t/σ_s is 0 at a final sigma of 0 (λ_t = ∞).
        let ratio = if sigma_t == 0.0 {
            0.0
        } else {
            sigma_t / sigma_s
        };

        let first_order = cfg.solver_order == 1 || self.lower_order_nums < 1 || lower_final;
        let out = if first_order {
            lincomb(ratio, sample, -alpha_t * em1, x0)
        } else {
            let m1 = self.history[self.history.len() - 2].clone();
            let lambda_s1 = Self::lambda(self.sigmas[step - 1]);
            let r0 = (lambda_s0 - lambda_s1) / h;
            // D0 = m0, D1 = (m0 − m1)/r0.
            let c_d1 = match cfg.solver_type {
                SolverType::Midpoint => -0.5 * alpha_t * em1,
                SolverType::Heun => alpha_t * (em1 / h + 1.0),
            };
            let c_m0 = -alpha_t * em1 + c_d1 / r0;
            let c_m1 = -c_d1 / r0;
            lincomb(ratio, sample, 1.0, lincomb(c_m0, x0, c_m1, m1))
        };
        if self.lower_order_nums < cfg.solver_order {
            self.lower_order_nums += 1;
        }
        out
    }
}
