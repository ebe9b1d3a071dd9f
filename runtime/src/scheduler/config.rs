//! `SchedulerConfig`: the fields of a diffusers `scheduler/scheduler_config.json` that the
//! DDIM, Euler and DPM-Solver++ schedulers read, with diffusers' defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// How the training betas are laid out over the `num_train_timesteps` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum BetaSchedule {
    /// `linspace(beta_start, beta_end, T)` (diffusers' default).
    #[default]
    #[serde(rename = "linear")]
    Linear,
    /// `linspace(√beta_start, √beta_end, T)²` (Stable Diffusion).
    #[serde(rename = "scaled_linear")]
    ScaledLinear,
    /// The cosine schedule `ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2)`, betas capped at 0.999.
    #[serde(rename = "squaredcos_cap_v2")]
    SquaredCosCapV2,
}

/// What the U-Net predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PredictionType {
    /// The noise ε (diffusers' default).
    #[default]
    #[serde(rename = "epsilon")]
    Epsilon,
    /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀.
    #[serde(rename = "v_prediction")]
    VPrediction,
    /// The clean sample x₀.
    #[serde(rename = "sample")]
    Sample,
}

/// How the inference timesteps are picked among the training ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimestepSpacing {
    /// Evenly from T−1 down to 0, rounded (Euler's and DPM-Solver's default).
    #[serde(rename = "linspace")]
    Linspace,
    /// Multiples of T div N, plus `steps_offset` (DDIM's default).
    #[serde(rename = "leading")]
    Leading,
    /// Down from T−1 in steps of T/N, never reaching 0 (Lin et al. 2023).
    #[serde(rename = "trailing")]
    Trailing,
}

/// The last sigma of the Euler and DPM-Solver schedules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum FinalSigmas {
    /// 0: the last step returns the predicted clean sample (default).
    #[default]
    #[serde(rename = "zero")]
    Zero,
    /// The smallest training sigma.
    #[serde(rename = "sigma_min")]
    SigmaMin,
}

/// DPM-Solver's second-order update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SolverType {
    /// Default.
    #[default]
    #[serde(rename = "midpoint")]
    Midpoint,
    /// Heun's rule.
    #[serde(rename = "heun")]
    Heun,
}

fn default_train_steps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    0.0001
}
fn default_beta_end() -> f64 {
    0.02
}
fn default_true() -> bool {
    true
}
fn default_one() -> f64 {
    1.0
}
fn default_order() -> usize {
    2
}
fn default_algorithm() -> String {
    "dpmsolver++".into()
}
fn default_interpolation() -> String {
    "linear".into()
}
fn default_timestep_type() -> String {
    "discrete".into()
}

/// A diffusers scheduler configuration. Keys unknown to unas (e.g. PNDM's `skip_prk_steps`)
/// are ignored, as diffusers' `from_config` does; settings unas does not implement are
/// rejected by [`SchedulerConfig::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// diffusers class that wrote the file (`DDIMScheduler`, `PNDMScheduler`, …). Default: none.
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    /// Training timesteps T. Default: 1000.
    #[serde(default = "default_train_steps")]
    pub num_train_timesteps: usize,
    /// First beta. Default: 0.0001.
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// Last beta. Default: 0.02.
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
    /// Beta layout. Default: linear.
    #[serde(default)]
    pub beta_schedule: BetaSchedule,
    /// Explicit betas (override the schedule). Default: none.
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    /// What the model predicts. Default: epsilon.
    #[serde(default)]
    pub prediction_type: PredictionType,
    /// Inference timestep spacing. Default: each scheduler's own (DDIM leading, others linspace).
    #[serde(default)]
    pub timestep_spacing: Option<TimestepSpacing>,
    /// Added to `leading` timesteps. Default: 0.
    #[serde(default)]
    pub steps_offset: usize,
    /// Rescale betas to zero terminal SNR (Lin et al. 2023, Alg. 1). Default: false.
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    /// DDIM: ᾱ before the first training step is 1 (else ᾱ₀). Default: true.
    #[serde(default = "default_true")]
    pub set_alpha_to_one: bool,
    /// DDIM: clamp the predicted x₀ to ±`clip_sample_range`. Default: true.
    #[serde(default = "default_true")]
    pub clip_sample: bool,
    /// DDIM: clamp range. Default: 1.0.
    #[serde(default = "default_one")]
    pub clip_sample_range: f64,
    /// Dynamic thresholding (not implemented: must be false). Default: false.
    #[serde(default)]
    pub thresholding: bool,
    /// DPM-Solver order (1 or 2). Default: 2.
    #[serde(default = "default_order")]
    pub solver_order: usize,
    /// DPM-Solver variant (only `dpmsolver++`). Default: `dpmsolver++`.
    #[serde(default = "default_algorithm")]
    pub algorithm_type: String,
    /// DPM-Solver second-order rule. Default: midpoint.
    #[serde(default)]
    pub solver_type: SolverType,
    /// DPM-Solver: lower-order steps at the end for < 15 steps. Default: true.
    #[serde(default = "default_true")]
    pub lower_order_final: bool,
    /// DPM-Solver: first-order last step. Default: false.
    #[serde(default)]
    pub euler_at_final: bool,
    /// DPM-Solver: clip timesteps whose log-SNR λ is below this. Default: −∞ (no clipping;
    /// `null` or diffusers' `-Infinity` in the file).
    #[serde(default)]
    pub lambda_min_clipped: Option<f64>,
    /// Euler and DPM-Solver: last sigma. Default: zero.
    #[serde(default)]
    pub final_sigmas_type: FinalSigmas,
    /// Karras sigmas (not implemented: must be false). Default: false.
    #[serde(default)]
    pub use_karras_sigmas: bool,
    /// Euler sigma interpolation (only `linear`). Default: linear.
    #[serde(default = "default_interpolation")]
    pub interpolation_type: String,
    /// Euler timestep type (only `discrete`). Default: discrete.
    #[serde(default = "default_timestep_type")]
    pub timestep_type: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("all fields have defaults")
    }
}

impl SchedulerConfig {
    /// Stable Diffusion 1.5's released configuration (scaled-linear betas 0.00085 → 0.012,
    /// epsilon, `steps_offset` 1, `set_alpha_to_one` and `clip_sample` false).
    pub fn stable_diffusion() -> Self {
        Self {
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: BetaSchedule::ScaledLinear,
            steps_offset: 1,
            set_alpha_to_one: false,
            clip_sample: false,
            ..Self::default()
        }
    }

    /// Parses the text of a `scheduler_config.json` (`file` names it in errors). Python's
    /// `-Infinity`/`Infinity`/`NaN`, which diffusers writes for `lambda_min_clipped`, read as
    /// null (the default).
    pub fn from_json(text: &str, file: &Path) -> Result<Self, RuntimeError> {
        let cleaned = text
            .replace("-Infinity", "null")
            .replace("Infinity", "null")
            .replace("NaN", "null");
        let mut de = serde_json::Deserializer::from_str(&cleaned);
        let config: Self =
            serde_path_to_error::deserialize(&mut de).map_err(|e| RuntimeError::BadFile {
                file: file.to_path_buf(),
                message: format!("field `{}`: {}", e.path(), e.inner()),
            })?;
        config.check().map_err(|message| RuntimeError::BadFile {
            file: file.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    /// Reads a `scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_json(&text, path)
    }

    /// diffusers' `scheduler/scheduler_config.json` of a `DDIMScheduler` with these settings
    /// (DDIM's fields only; `timestep_spacing` as DDIM reads it, `leading` when unset).
    pub fn to_ddim_json(&self) -> serde_json::Value {
        fn v<T: Serialize>(x: &T) -> serde_json::Value {
            serde_json::to_value(x).expect("enums serialise")
        }
        serde_json::json!({
            "_class_name": "DDIMScheduler",
            "_diffusers_version": "0.42.1",
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": v(&self.beta_schedule),
            "trained_betas": self.trained_betas,
            "prediction_type": v(&self.prediction_type),
            "timestep_spacing": v(&self.timestep_spacing.unwrap_or(TimestepSpacing::Leading)),
            "steps_offset": self.steps_offset,
            "rescale_betas_zero_snr": self.rescale_betas_zero_snr,
            "set_alpha_to_one": self.set_alpha_to_one,
            "clip_sample": self.clip_sample,
            "clip_sample_range": self.clip_sample_range,
            "thresholding": self.thresholding,
            "dynamic_thresholding_ratio": 0.995,
            "sample_max_value": 1.0,
        })
    }

    /// Rejects settings unas does not implement, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if self.num_train_timesteps < 2 {
            return Err("`num_train_timesteps` must be at least 2".into());
        }
        if let Some(b) = &self.trained_betas {
            if b.len() != self.num_train_timesteps {
                return Err(format!(
                    "`trained_betas` has {} values for {} training steps",
                    b.len(),
                    self.num_train_timesteps
                ));
            }
        }
        if self.thresholding {
            return Err("`thresholding` is not supported".into());
        }
        if self.use_karras_sigmas {
            return Err("`use_karras_sigmas` is not supported".into());
        }
        if !(1..=2).contains(&self.solver_order) {
            return Err(format!(
                "`solver_order` {} is not supported (1 or 2)",
                self.solver_order
            ));
        }
        if self.algorithm_type != "dpmsolver++" {
            return Err(format!(
                "`algorithm_type` `{}` is not supported (dpmsolver++)",
                self.algorithm_type
            ));
        }
        if self.interpolation_type != "linear" {
            return Err("`interpolation_type` other than linear is not supported".into());
        }
        if self.timestep_type != "discrete" {
            return Err("`timestep_type` other than discrete is not supported".into());
        }
        Ok(())
    }
}
