//! The denoising training objective of candidate U-Nets with the seed's recipe knobs (the
//! DeciDiffusion 1.0 model card's scheduler; the formulas of diffusers' schedulers and
//! training examples, Min-SNR-γ from Hang et al. 2023): beta schedule (scaled-linear or
//! cosine), prediction (epsilon or v), zero terminal SNR, Min-SNR-γ loss weighting, and an
//! AdamW loop that stops a candidate whose loss
//! turns NaN or infinite. Noise and timesteps come from the seeded platform-independent
//! [`Rng`], so the same seed gives the same run on the same backend.

use std::sync::Mutex;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use unas_runtime::scheduler::schedule::{
    cosine_betas, cumprod_alphas, linspace, rescale_zero_terminal_snr,
};
use unas_runtime::scheduler::{BetaSchedule, PredictionType, SchedulerConfig, TimestepSpacing};
use unas_runtime::UNet2DConditionModel;
use unas_space::rng::Rng;

use crate::EvalError;

/// Beta schedule of the forward (noising) process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Betas {
    /// SD1.5's `scaled_linear`: linspace(√0.00085, √0.012, T)².
    ScaledLinear,
    /// `squaredcos_cap_v2` (cosine).
    Cosine,
}

/// What the U-Net predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The added noise ε.
    Epsilon,
    /// v = √ᾱ·ε − √(1−ᾱ)·x0.
    V,
}

/// Training recipe.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    /// Beta schedule (default cosine, as DeciDiffusion).
    pub betas: Betas,
    /// Prediction target (default v).
    pub prediction: Prediction,
    /// Rescale the schedule to zero terminal SNR (default true).
    pub zero_terminal_snr: bool,
    /// Min-SNR-γ weighting; `None` = plain MSE (default Some(5)).
    pub min_snr_gamma: Option<f64>,
    /// Training timesteps T (default 1000).
    pub timesteps: usize,
    /// AdamW learning rate (default 1e-3): the constant rate, or the peak of the cosine
    /// schedule.
    pub lr: f64,
    /// Learning-rate schedule (default constant; not serialised when constant, so settings
    /// hashes of earlier recipes stay as they were).
    #[serde(skip_serializing_if = "LrSchedule::is_constant")]
    pub lr_schedule: LrSchedule,
    /// Linear warm-up steps of the cosine schedule (default 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub warmup_steps: usize,
    /// Clip the global L2 norm of the gradient (all parameters together, as
    /// `torch.nn.utils.clip_grad_norm_` in diffusers' training scripts) to this before each
    /// step (default none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Keep an exponential moving average of the weights over this last fraction of the steps
    /// and return it (0 = no EMA; default 0.5: an EMA late in training, as DeciDiffusion's,
    /// over a window long enough to average out the last iterates' noise). A non-zero fraction
    /// whose window is shorter than [`MIN_EMA_WINDOW`] steps is refused
    /// ([`Recipe::ema_window`]).
    pub ema_fraction: f64,
}

/// Learning-rate schedule of a training run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// `lr` at every step.
    #[default]
    Constant,
    /// Linear warm-up over `warmup_steps`, then cosine decay to 0 at the last step
    /// (diffusers' `get_cosine_schedule_with_warmup`).
    Cosine,
}

impl LrSchedule {
    fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }
}

/// Learning rate of step `k` (0-based) of a `steps`-step run: linear warm-up over `warmup`
/// steps to `lr`, then cosine decay to 0 (diffusers' `get_cosine_schedule_with_warmup`).
pub fn warmup_cosine(lr: f64, warmup: usize, steps: usize, k: usize) -> f64 {
    let w = warmup.min(steps.saturating_sub(1));
    if k < w {
        return lr * (k + 1) as f64 / w as f64;
    }
    let span = (steps - w).max(1) as f64;
    let p = (k - w) as f64 / span;
    lr * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

impl Default for Recipe {
    /// DeciDiffusion's recipe: cosine, v-prediction, zero terminal SNR, Min-SNR-5.
    fn default() -> Self {
        Self::decidiffusion()
    }
}

/// The fewest iterates a non-zero `ema_fraction` may average: a shorter window (5 % of 60
/// steps is 3 iterates at decay 0.5, 5 % of 20 steps the last iterate alone) is a noisy copy of
/// the last weights, not an average.
pub const MIN_EMA_WINDOW: usize = 10;

/// The EMA of a training run (see [`Recipe::ema_window`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmaWindow {
    /// Final iterates averaged: `ceil(ema_fraction * steps)`.
    pub window: usize,
    /// Decay per update: 1 − 2 / (window + 1) (the usual span rule).
    pub decay: f64,
}

impl Recipe {
    /// The DDIM sampler of this recipe: the training schedule, trailing timestep spacing (no
    /// step 0), the recipe's prediction type and zero-terminal-SNR rescaling.
    pub fn scheduler_config(&self) -> SchedulerConfig {
        let r = self;
        SchedulerConfig {
            num_train_timesteps: r.timesteps,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: match r.betas {
                Betas::ScaledLinear => BetaSchedule::ScaledLinear,
                Betas::Cosine => BetaSchedule::SquaredCosCapV2,
            },
            prediction_type: match r.prediction {
                Prediction::Epsilon => PredictionType::Epsilon,
                Prediction::V => PredictionType::VPrediction,
            },
            rescale_betas_zero_snr: r.zero_terminal_snr,
            timestep_spacing: Some(TimestepSpacing::Trailing),
            set_alpha_to_one: false,
            clip_sample: false,
            ..SchedulerConfig::default()
        }
    }

    /// The EMA of a `steps`-step run: `None` without one (`ema_fraction` 0, or no steps), else
    /// the window of the last `ceil(ema_fraction * steps)` iterates and its decay. `Err` (the
    /// message, without the field name) when the fraction is outside [0, 1] or its window is
    /// shorter than [`MIN_EMA_WINDOW`] iterates.
    pub fn ema_window(&self, steps: usize) -> Result<Option<EmaWindow>, String> {
        let f = self.ema_fraction;
        if !(0.0..=1.0).contains(&f) {
            return Err("must be in [0, 1]".into());
        }
        let window_of = |steps: usize| (f * steps as f64).ceil() as usize;
        let window = window_of(steps);
        if window == 0 {
            return Ok(None);
        }
        if window < MIN_EMA_WINDOW {
            // The fewest steps whose window is long enough (window_of grows with the steps).
            let estimate = ((MIN_EMA_WINDOW - 1) as f64 / f).floor();
            let more_steps = if estimate < 1e12 {
                let mut need = estimate as usize;
                while window_of(need) < MIN_EMA_WINDOW {
                    need += 1;
                }
                format!("train at least {need} steps, ")
            } else {
                String::new()
            };
            return Err(format!(
                "{f} of {steps} training steps is an EMA over {window} iterate(s), fewer than \
                 {MIN_EMA_WINDOW}; {more_steps}raise the fraction, or set ema_fraction = 0 \
                 (no EMA)"
            ));
        }
        Ok(Some(EmaWindow {
            window,
            decay: 1.0 - 2.0 / (window as f64 + 1.0),
        }))
    }

    /// Recipe B: cosine betas, v-prediction, zero terminal SNR, Min-SNR-γ 5.
    pub fn decidiffusion() -> Self {
        Self {
            betas: Betas::Cosine,
            prediction: Prediction::V,
            zero_terminal_snr: true,
            min_snr_gamma: Some(5.0),
            timesteps: 1000,
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            warmup_steps: 0,
            max_grad_norm: None,
            ema_fraction: 0.5,
        }
    }

    /// Recipe A: SD1.5's scaled-linear betas and epsilon prediction, plain MSE.
    pub fn sd15() -> Self {
        Self {
            betas: Betas::ScaledLinear,
            prediction: Prediction::Epsilon,
            zero_terminal_snr: false,
            min_snr_gamma: None,
            timesteps: 1000,
            lr: 1e-3,
            lr_schedule: LrSchedule::Constant,
            warmup_steps: 0,
            max_grad_norm: None,
            ema_fraction: 0.5,
        }
    }

    /// Learning rate of step `k` (0-based) of a `steps`-step run.
    pub fn lr_at(&self, k: usize, steps: usize) -> f64 {
        match self.lr_schedule {
            LrSchedule::Constant => self.lr,
            LrSchedule::Cosine => warmup_cosine(self.lr, self.warmup_steps, steps, k),
        }
    }

    /// ᾱ_t for t = 0..T.
    pub fn alphas_cumprod(&self) -> Vec<f64> {
        let t = self.timesteps;
        let betas = match self.betas {
            Betas::ScaledLinear => linspace(0.00085f64.sqrt(), 0.012f64.sqrt(), t)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            Betas::Cosine => cosine_betas(t, 0.999),
        };
        let betas = if self.zero_terminal_snr {
            rescale_zero_terminal_snr(&betas)
        } else {
            betas
        };
        cumprod_alphas(&betas)
    }

    /// Loss weight of timestep `t` (1 without Min-SNR; 1 where the SNR is zero).
    pub fn loss_weight(&self, alpha_cumprod: f64) -> f64 {
        let Some(gamma) = self.min_snr_gamma else {
            return 1.0;
        };
        let snr = alpha_cumprod / (1.0 - alpha_cumprod);
        if snr == 0.0 || !snr.is_finite() {
            return 1.0;
        }
        let clipped = snr.min(gamma);
        match self.prediction {
            Prediction::Epsilon => clipped / snr,
            Prediction::V => clipped / (snr + 1.0),
        }
    }
}

/// Builds a module with its random initial weights drawn from the backend generator seeded with
/// `seed`, reproducibly: burn initialises parameters lazily from one process-wide generator, so
/// the seeding and the materialisation of every parameter happen under one lock here.
pub fn init_seeded<B: Backend, M: Module<B>>(
    device: &B::Device,
    seed: u64,
    build: impl FnOnce() -> M,
) -> M {
    struct Materialise;
    impl<B: Backend> ModuleVisitor<B> for Materialise {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    B::seed(device, seed);
    let module = build();
    module.visit(&mut Materialise);
    module
}

/// Standard normal values from the seeded generator (Box-Muller).
pub fn normal(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u, v) = (rng.uniform().max(1e-300), rng.uniform());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        })
        .collect()
}

/// A noised batch: the U-Net's inputs, its regression target and the per-sample loss weights.
pub struct NoisyBatch<B: Backend> {
    /// Noisy latents x_t `[b, c, h, w]`.
    pub xt: Tensor<B, 4>,
    /// Timesteps `[b]` (as floats).
    pub t: Tensor<B, 1>,
    /// ε or v, per the recipe `[b, c, h, w]`.
    pub target: Tensor<B, 4>,
    /// Loss weight of each sample `[b, 1, 1, 1]` (Min-SNR-γ, or 1).
    pub weights: Tensor<B, 4>,
}

/// Noises clean latents `x0` `[b, c, h, w]` at `timesteps` with `noise` (`b*c*h*w` standard
/// normal values): x_t = √ᾱ·x0 + √(1−ᾱ)·ε, and the recipe's target and weights.
pub fn noisy_batch<B: Backend>(
    x0: Tensor<B, 4>,
    timesteps: &[usize],
    noise: Vec<f32>,
    recipe: &Recipe,
    alphas_cumprod: &[f64],
) -> NoisyBatch<B> {
    let device = x0.device();
    let dims = x0.dims();
    let b = dims[0];
    let col = |f: &dyn Fn(f64) -> f64| -> Tensor<B, 4> {
        let v: Vec<f32> = timesteps
            .iter()
            .map(|&t| f(alphas_cumprod[t]) as f32)
            .collect();
        Tensor::from_data(TensorData::new(v, [b, 1, 1, 1]), &device)
    };
    let sqrt_a = col(&|a| a.sqrt());
    let sqrt_1ma = col(&|a| (1.0 - a).sqrt());
    let weights = col(&|a| recipe.loss_weight(a));
    let eps = Tensor::<B, 4>::from_data(TensorData::new(noise, dims), &device);
    let xt = x0.clone() * sqrt_a.clone() + eps.clone() * sqrt_1ma.clone();
    let target = match recipe.prediction {
        Prediction::Epsilon => eps,
        Prediction::V => eps * sqrt_a - x0 * sqrt_1ma,
    };
    let t: Vec<f32> = timesteps.iter().map(|&t| t as f32).collect();
    let t = Tensor::<B, 1>::from_data(TensorData::new(t, [b]), &device);
    NoisyBatch {
        xt,
        t,
        target,
        weights,
    }
}

/// Mean over the batch of each sample's weighted mean squared error.
///
/// - `pred`, `target`: `[b, c, h, w]`; `weights`: `[b, 1, 1, 1]`; returns `[1]`
pub fn weighted_mse<B: Backend>(
    pred: Tensor<B, 4>,
    target: Tensor<B, 4>,
    weights: Tensor<B, 4>,
) -> Tensor<B, 1> {
    let per_sample = (pred - target)
        .powi_scalar(2)
        .mean_dim(3)
        .mean_dim(2)
        .mean_dim(1);
    (per_sample * weights).mean()
}

/// The weighted denoising loss of one batch.
///
/// - `x0`: clean latents `[b, c, h, w]`
/// - `context`: text embeddings `[b, len, cross_attention_dim]`
/// - `timesteps`, `noise`: per-sample timesteps and `b*c*h*w` standard normal values
/// - returns the scalar loss `[1]`
pub fn diffusion_loss<B: Backend>(
    unet: &UNet2DConditionModel<B>,
    x0: Tensor<B, 4>,
    context: Tensor<B, 3>,
    timesteps: &[usize],
    noise: Vec<f32>,
    recipe: &Recipe,
    alphas_cumprod: &[f64],
) -> Tensor<B, 1> {
    let nb = noisy_batch(x0, timesteps, noise, recipe, alphas_cumprod);
    let pred = unet.forward(nb.xt, nb.t, context);
    weighted_mse(pred, nb.target, nb.weights)
}

/// Clean latents `[b, c, h, w]` and text embeddings `[b, len, dim]`.
pub type Batch<B> = (Tensor<B, 4>, Tensor<B, 3>);

/// Outcome of a training run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainLog {
    /// Loss of every step.
    pub losses: Vec<f32>,
}

/// Trains `unet` for `steps` AdamW steps on batches from `next_batch` (clean latents and text
/// embeddings); timesteps and noise are drawn from `rng`. Stops with an error naming the step
/// when the loss is NaN or infinite. With `recipe.ema_fraction > 0` the returned model is the
/// exponential moving average over the last `ceil(fraction * steps)` steps (decay
/// 1 − 2 / (window + 1), the usual span rule); a window shorter than [`MIN_EMA_WINDOW`] steps
/// is refused before training ([`Recipe::ema_window`]).
pub fn train<B: AutodiffBackend>(
    unet: UNet2DConditionModel<B>,
    recipe: &Recipe,
    steps: usize,
    rng: &mut Rng,
    next_batch: &mut dyn FnMut(&mut Rng) -> Batch<B>,
    progress: &mut dyn FnMut(usize, f32),
) -> Result<(UNet2DConditionModel<B::InnerBackend>, TrainLog), EvalError> {
    train_observed(
        unet,
        recipe,
        steps,
        rng,
        next_batch,
        &mut |step, loss, _| progress(step, loss),
    )
}

/// [`train`], with `observe(steps done, loss, current weights)` called after every step (a
/// learning curve evaluates the current iterate at chosen budgets this way).
pub fn train_observed<B: AutodiffBackend>(
    mut unet: UNet2DConditionModel<B>,
    recipe: &Recipe,
    steps: usize,
    rng: &mut Rng,
    next_batch: &mut dyn FnMut(&mut Rng) -> Batch<B>,
    observe: &mut dyn FnMut(usize, f32, &UNet2DConditionModel<B>),
) -> Result<(UNet2DConditionModel<B::InnerBackend>, TrainLog), EvalError> {
    let acp = recipe.alphas_cumprod();
    let mut opt = AdamWConfig::new().init::<B, UNet2DConditionModel<B>>();
    let mut losses = Vec::with_capacity(steps);
    let window = recipe
        .ema_window(steps)
        .map_err(|m| EvalError::Unsupported(format!("recipe.ema_fraction: {m}")))?;
    let ema_start = steps - window.map_or(0, |w| w.window);
    let mut ema: Option<Ema<B::InnerBackend, UNet2DConditionModel<B::InnerBackend>>> = None;
    for step in 0..steps {
        let (x0, context) = next_batch(rng);
        let dims = x0.dims();
        let timesteps: Vec<usize> = (0..dims[0]).map(|_| rng.below(recipe.timesteps)).collect();
        let noise = normal(rng, dims.iter().product());
        let loss = diffusion_loss(&unet, x0, context, &timesteps, noise, recipe, &acp);
        let value: f32 = loss.clone().into_scalar().elem::<f32>();
        if !value.is_finite() {
            return Err(EvalError::Diverged(format!("loss {value} at step {step}")));
        }
        losses.push(value);
        let mut grads = GradientsParams::from_grads(loss.backward(), &unet);
        if let Some(max) = recipe.max_grad_norm {
            clip_grad_norm(&unet, &mut grads, max);
        }
        unet = opt.step(recipe.lr_at(step, steps), unet, grads);
        if let Some(w) = window.filter(|_| step >= ema_start) {
            let current = unet.valid();
            match &mut ema {
                None => ema = Some(Ema::new(current, w.decay)),
                Some(e) => e.update(&current),
            }
        }
        observe(step + 1, value, &unet);
    }
    let model = match ema {
        Some(e) => e.into_inner(),
        None => unet.valid(),
    };
    Ok((model, TrainLog { losses }))
}

mod ema;
pub use ema::*;
