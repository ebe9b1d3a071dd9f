//! Samplers that turn the U-Net's predictions into a denoising trajectory: DDIM, Euler
//! (discrete) and DPM-Solver++ (2M), behind one [`Scheduler`] trait, configured from a
//! diffusers `scheduler_config.json` ([`SchedulerConfig`]).
//!
//! Schedules (betas, ᾱ, sigmas, timesteps, per-step coefficients) are computed in f64; the
//! tensors are updated with f32 scalar coefficients.

pub mod config;
pub mod ddim;
pub mod dpm_solver;
pub mod euler;
pub mod schedule;

use std::fmt;
use std::str::FromStr;

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

pub use config::{BetaSchedule, FinalSigmas, PredictionType, SchedulerConfig, TimestepSpacing};
pub use ddim::DdimScheduler;
pub use dpm_solver::DpmSolverMultistepScheduler;
pub use euler::EulerDiscreteScheduler;

use crate::error::RuntimeError;

/// A diffusion sampler. Call [`Scheduler::set_timesteps`], then for each step `i` in
/// `0..timesteps().len()`: run the U-Net on [`Scheduler::scale_model_input`] of the sample at
/// timestep `timesteps()[i]`, and pass its output to [`Scheduler::step`].
pub trait Scheduler<B: Backend> {
    /// Chooses `num_inference_steps` timesteps (and resets any multistep history).
    fn set_timesteps(&mut self, num_inference_steps: usize) -> Result<(), RuntimeError>;

    /// The timesteps to run the U-Net at, highest first (fractional for Euler's linspace).
    fn timesteps(&self) -> &[f64];

    /// Standard deviation of the initial noise (the latents are `noise × init_noise_sigma`).
    fn init_noise_sigma(&self) -> f64;

    /// The U-Net input for step `step` (Euler divides by √(σ²+1); the others return `sample`).
    /// Shapes: `[batch, c, h, w]` in and out.
    fn scale_model_input(&self, sample: Tensor<B, 4>, step: usize) -> Tensor<B, 4>;

    /// One denoising step: the sample at `timesteps()[step]` and the model's prediction there
    /// → the sample at the next timestep. Steps must be taken in order for multistep solvers.
    /// Shapes: `[batch, c, h, w]`.
    fn step(
        &mut self,
        model_output: Tensor<B, 4>,
        step: usize,
        sample: Tensor<B, 4>,
    ) -> Tensor<B, 4>;
}

/// The schedulers unas implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    /// diffusers' `DDIMScheduler` (η = 0).
    Ddim,
    /// diffusers' `EulerDiscreteScheduler`.
    Euler,
    /// diffusers' `DPMSolverMultistepScheduler` (DPM-Solver++ 2M by default).
    DpmSolver,
}

impl SchedulerKind {
    /// The kind a diffusers class name stands for, if unas implements it.
    pub fn from_class_name(name: &str) -> Option<Self> {
        match name {
            "DDIMScheduler" => Some(Self::Ddim),
            "EulerDiscreteScheduler" => Some(Self::Euler),
            "DPMSolverMultistepScheduler" => Some(Self::DpmSolver),
            _ => None,
        }
    }

    /// Builds the scheduler from a configuration.
    pub fn build<B: Backend>(
        self,
        config: &SchedulerConfig,
    ) -> Result<Box<dyn Scheduler<B>>, RuntimeError> {
        config
            .check()
            .map_err(|m| RuntimeError::Input(format!("scheduler config: {m}")))?;
        Ok(match self {
            Self::Ddim => Box::new(DdimScheduler::new(config)),
            Self::Euler => Box::new(EulerDiscreteScheduler::new(config)),
            Self::DpmSolver => Box::new(DpmSolverMultistepScheduler::new(config)),
        })
    }
}

impl FromStr for SchedulerKind {
    type Err = RuntimeError;

    /// `ddim`, `euler` or `dpm` (also `dpm++`, `dpmsolver++`), or a diffusers class name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ddim" => Ok(Self::Ddim),
            "euler" => Ok(Self::Euler),
            "dpm" | "dpm++" | "dpmsolver++" | "dpm-solver++" => Ok(Self::DpmSolver),
            _ => Self::from_class_name(s).ok_or_else(|| {
                RuntimeError::Input(format!(
                    "unknown scheduler `{s}`: use ddim, euler or dpm (DPM-Solver++)"
                ))
            }),
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::DpmSolver => "dpm",
        })
    }
}

/// `a·x + b·y` with f64 coefficients.
pub(crate) fn lincomb<B: Backend>(
    a: f64,
    x: Tensor<B, 4>,
    b: f64,
    y: Tensor<B, 4>,
) -> Tensor<B, 4> {
    x.mul_scalar(a as f32) + y.mul_scalar(b as f32)
}

pub(crate) fn check_steps(n: usize, train: usize) -> Result<(), RuntimeError> {
    if n == 0 || n > train {
        return Err(RuntimeError::Input(format!(
            "{n} inference steps: use 1 to {train} (the scheduler's training timesteps)"
        )));
    }
    Ok(())
}
