//! Training a weight-sharing supernet with the sandwich rule (BigNAS, Yu et al. 2020; used for
//! diffusion U-Nets by DDSM, Yang et al. 2024): every step trains the largest sub-network (the
//! covering architecture), the smallest and `random_subnets` randomly drawn ones (uniformly by
//! default, or towards the largest: `sampling`) of one
//! topology on the same minibatch, timesteps and noise; the smaller ones also regress onto the
//! largest's prediction (inplace distillation). The seed's recipe (cosine betas, v-prediction,
//! zero terminal SNR, Min-SNR-γ), linear warm-up then cosine decay of the learning rate, an EMA
//! of the weights over the last part of training, and zero-initialised residual outputs (ResNet
//! `conv2`, attention `proj_out`, `conv_out`) so that every sub-network starts as a smooth
//! function of the ones it contains.
//!
//! Checkpoints (weights, optimiser state, EMA, step, losses) are written every
//! `checkpoint_every` steps, atomically; all randomness of step `k` is drawn from a generator
//! seeded with (`seed`, `k`), so a resumed run continues to the same final weights as an
//! uninterrupted one.

use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};
use unas_runtime::{InheritStats, RoleWeights, SubNet, UNet2DConditionModel};
use unas_space::rng::Rng;
use unas_space::{SearchSpace, SubnetSampling, Topology, UNetArch};

use super::checkpoint::{settings_hash_of, Checkpoints};
use super::latent_cache::LatentCache;
use super::run_state::RunState;
use super::train::{init_seeded, noisy_batch, normal, weighted_mse, NoisyBatch, Recipe};
use crate::EvalError;

/// Which sub-networks one training step trains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SupernetRule {
    /// The largest, the smallest and `random_subnets` drawn ones (BigNAS's sandwich rule).
    #[default]
    Sandwich,
    /// Only `random_subnets` drawn ones (single-path one-shot, Guo et al. 2020): no
    /// sub-network is trained every step.
    Uniform,
}

impl SupernetRule {
    /// Whether this is the default (kept out of settings hashes made before it existed).
    pub fn is_sandwich(&self) -> bool {
        *self == SupernetRule::Sandwich
    }
}

/// Settings of supernet training; every field is part of the supernet's identity (hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupernetSettings {
    /// Optimiser steps (default 600).
    pub steps: usize,
    /// Minibatch (default 16).
    pub batch: usize,
    /// Peak AdamW learning rate (default 1e-3).
    pub lr: f64,
    /// Linear warm-up steps before the cosine decay (default 30).
    pub warmup_steps: usize,
    /// Randomly drawn sub-networks per step besides the largest and the smallest (default 2).
    pub random_subnets: usize,
    /// How those are drawn (default uniformly; left out of the settings hash when uniform, so
    /// supernets made before this setting keep their identity).
    #[serde(skip_serializing_if = "SubnetSampling::is_uniform")]
    pub sampling: SubnetSampling,
    /// Which sub-networks a step trains (default the sandwich rule; left out of the settings
    /// hash when sandwich, so supernets made before this setting keep their identity).
    #[serde(skip_serializing_if = "SupernetRule::is_sandwich")]
    pub rule: SupernetRule,
    /// Weight of the inplace-distillation term ‖pred_sub − sg(pred_largest)‖² (0 = off;
    /// default 1; must be 0 with the uniform rule, which does not run the largest).
    pub distill_weight: f64,
    /// The returned weights are an EMA over this last fraction of the steps (0 = the last
    /// iterate; default 0.3; decay 1 − 2/(window + 1)).
    pub ema_fraction: f64,
    /// Checkpoint every this many steps (default 50).
    pub checkpoint_every: usize,
    /// Seed of the initialisation and of every step's draws (default 0).
    pub seed: u64,
    /// Share of captions replaced by the empty one (default 0.1).
    pub cond_dropout: f64,
    /// Noise schedule, prediction target and loss weighting (the learning rate and EMA of
    /// the recipe are not used: see `lr`, `ema_fraction`).
    pub recipe: Recipe,
}

impl Default for SupernetSettings {
    fn default() -> Self {
        Self {
            steps: 600,
            batch: 16,
            lr: 1e-3,
            warmup_steps: 30,
            random_subnets: 2,
            sampling: SubnetSampling::Uniform,
            rule: SupernetRule::Sandwich,
            distill_weight: 1.0,
            ema_fraction: 0.3,
            checkpoint_every: 50,
            seed: 0,
            cond_dropout: 0.1,
            recipe: Recipe::default(),
        }
    }
}

impl SupernetSettings {
    /// Checks the settings; the error names the field.
    pub fn check(&self) -> Result<(), EvalError> {
        let bad = |f: &str, m: &str| Err(EvalError::Unsupported(format!("supernet.{f}: {m}")));
        if self.steps == 0 {
            return bad("steps", "must be at least 1");
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", "must be positive");
        }
        if let Err(m) = self.ema_window() {
            return bad("ema_fraction", &m);
        }
        if !(0.0..=1.0).contains(&self.cond_dropout) {
            return bad("cond_dropout", "must be in [0, 1]");
        }
        if !(self.distill_weight >= 0.0 && self.distill_weight.is_finite()) {
            return bad("distill_weight", "must be >= 0");
        }
        if self.rule == SupernetRule::Uniform {
            if self.distill_weight != 0.0 {
                return bad(
                    "distill_weight",
                    "must be 0 with rule = uniform (the largest sub-network is not run)",
                );
            }
            if self.random_subnets == 0 {
                return bad(
                    "random_subnets",
                    "must be at least 1 with rule = uniform (nothing else is trained)",
                );
            }
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1");
        }
        Ok(())
    }

    /// Learning rate at step `k`: linear warm-up to `lr`, then cosine decay to 0.
    pub fn lr_at(&self, k: usize) -> f64 {
        super::train::warmup_cosine(self.lr, self.warmup_steps, self.steps, k)
    }

    /// The EMA window, by the recipe's rule ([`Recipe::ema_window`]: at least
    /// [`MIN_EMA_WINDOW`](super::train::MIN_EMA_WINDOW) iterates when not 0).
    fn ema_window(&self) -> Result<Option<super::train::EmaWindow>, String> {
        Recipe {
            ema_fraction: self.ema_fraction,
            ..self.recipe.clone()
        }
        .ema_window(self.steps)
    }

    /// First step inside the EMA window, and its decay.
    fn ema(&self) -> Option<(usize, f64)> {
        self.ema_window()
            .ok()
            .flatten()
            .map(|w| (self.steps - w.window, w.decay))
    }
}

/// The training data: cached latents (posterior mean and log-variance) with caption
/// embeddings, of which the first `train_items` are trained on (the rest are held out).
pub struct TrainData<'a> {
    /// The latent cache.
    pub cache: &'a LatentCache,
    /// The empty caption's embedding `[text_len, text_dim]`.
    pub uncond: &'a [f32],
    /// Items `0..train_items` are drawn for training.
    pub train_items: usize,
}

/// One step's progress.
#[derive(Clone, Copy, Debug)]
pub struct StepInfo {
    /// Steps done.
    pub step: usize,
    /// Of.
    pub steps: usize,
    /// The step's mean task loss over its sub-networks.
    pub loss: f32,
}

/// The result of a training run.
pub struct TrainedSupernet<B: Backend> {
    /// The covering architecture.
    pub arch: UNetArch,
    /// Its weights (the EMA when `ema_fraction > 0`).
    pub unet: UNet2DConditionModel<B>,
    /// Mean task loss of every step.
    pub losses: Vec<f32>,
    /// Steps run in this call (0 when the run was already complete).
    pub steps_run: usize,
}

fn io_err(file: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

/// The seed of step `k`'s generator in a run seeded with `seed` (SplitMix64 finaliser).
pub(crate) fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Zeroes the residual output layers: ResNet `conv2`, attention `proj_out`, `conv_out`.
struct ZeroResidualOutputs {
    path: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for ZeroResidualOutputs {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let p = self.path.join(".");
        let zero = p.contains("Resnet.conv2.")
            || p.contains("Attention.proj_out.")
            || p.contains("ConvOut.conv_out.");
        if !zero {
            return param;
        }
        // A new leaf: it must require gradients when the initialised one did.
        param.map(|t| {
            let grad = t.is_require_grad();
            t.zeros_like().set_require_grad(grad)
        })
    }
}

/// The covering architecture, a fresh supernet initialised from `seed` with zeroed residual
/// outputs, and (with `from`) every same-role, same-shape tensor of a pretrained U-Net, with
/// the counts of inherited and fresh tensors.
pub fn init_supernet<B: Backend>(
    space: &SearchSpace,
    topology: &Topology,
    seed: u64,
    from: Option<&RoleWeights>,
    device: &B::Device,
) -> Result<(UNetArch, UNet2DConditionModel<B>, Option<InheritStats>), EvalError> {
    let arch = space.supernet_arch(topology);
    let plan = arch.plan()?;
    let unet = init_seeded::<B, _>(device, seed, || {
        UNet2DConditionModel::<B>::from_plan(&arch, &plan, device)
    });
    let unet = unet.map(&mut ZeroResidualOutputs { path: Vec::new() });
    let (unet, stats) = match from {
        Some(w) => {
            let (unet, stats) = w.inherit(&arch, unet)?;
            (unet, Some(stats))
        }
        None => (unet, None),
    };
    Ok((arch, unet, stats))
}

/// Step `k`'s draws of a run seeded with `seed` (common random numbers: the step number is
/// the random state): a batch ([`draw_batch`]), a timestep per item and the noise, as a noisy
/// batch under `recipe`, with the captions `[b, text_len, text_dim]` and the generator for
/// whatever else the step draws.
pub(crate) fn draw_step<B: Backend>(
    data: &TrainData,
    (seed, k): (u64, usize),
    (batch, dropout): (usize, f64),
    recipe: &Recipe,
    alphas_cumprod: &[f64],
    device: &B::Device,
) -> (NoisyBatch<B>, Tensor<B, 3>, Rng) {
    let mut rng = Rng::seed(mix(seed, k as u64 + 1));
    let (x0, ctx) = draw_batch::<B>(data, batch, dropout, &mut rng, device);
    let dims = x0.dims();
    let timesteps: Vec<usize> = (0..dims[0]).map(|_| rng.below(recipe.timesteps)).collect();
    let noise = normal(&mut rng, dims.iter().product());
    let nb = noisy_batch(x0, &timesteps, noise, recipe, alphas_cumprod);
    (nb, ctx, rng)
}

/// One training batch drawn from `rng`: `batch` training items, each latent sampled from its
/// posterior and scaled, its caption or (with probability `dropout`) the empty one.
///
/// Returns `([b, c, h, w]` latents, `[b, text_len, text_dim]` embeddings).
pub fn draw_batch<B: Backend>(
    data: &TrainData,
    batch: usize,
    dropout: f64,
    rng: &mut Rng,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 3>) {
    use burn::tensor::TensorData;
    let cache = data.cache;
    let [c, h, w] = cache.manifest.latent;
    let [tl, td] = cache.manifest.text;
    let (l, t) = (cache.latent_len(), cache.text_len());
    let sf = cache.manifest.scaling_factor as f32;
    let idx: Vec<usize> = (0..batch).map(|_| rng.below(data.train_items)).collect();
    let eps = normal(rng, batch * l);
    let mut x0 = Vec::with_capacity(batch * l);
    let mut ctx = Vec::with_capacity(batch * t);
    for (k, &i) in idx.iter().enumerate() {
        let (mean, logvar) = (&cache.mean[i * l..][..l], &cache.logvar[i * l..][..l]);
        x0.extend((0..l).map(|j| (mean[j] + (0.5 * logvar[j]).exp() * eps[k * l + j]) * sf));
        if rng.uniform() < dropout {
            ctx.extend_from_slice(data.uncond);
        } else {
            ctx.extend_from_slice(&cache.context[i * t..][..t]);
        }
    }
    (
        Tensor::from_data(TensorData::new(x0, [batch, c, h, w]), device),
        Tensor::from_data(TensorData::new(ctx, [batch, tl, td]), device),
    )
}

/// The sub-networks of step `k` besides the largest (the supernet itself): the smallest (when
/// given) and `n_random` drawn from the topology by `sampling` with `rng`.
fn step_subnets(
    space: &SearchSpace,
    topology: &Topology,
    sup_arch: &UNetArch,
    smallest: Option<&SubNet>,
    n_random: usize,
    sampling: SubnetSampling,
    rng: &mut Rng,
) -> Result<Vec<SubNet>, EvalError> {
    let mut out: Vec<SubNet> = smallest.into_iter().cloned().collect();
    for _ in 0..n_random {
        let arch = space
            .sample_in_with(topology, rng, 10_000, sampling)
            .ok_or_else(|| {
                EvalError::Unsupported(format!(
                    "no candidate of topology {topology} could be drawn"
                ))
            })?;
        out.push(SubNet::new(&arch, sup_arch)?);
    }
    Ok(out)
}

/// Trains (or resumes, from the checkpoints in `dir`) the supernet of `topology`; see the
/// module docs. `from` is a pretrained U-Net's weights and a label naming them (part of the
/// settings hash). `stop_after` ends the call early after that many steps of this call (tests
/// use it to interrupt a run; `None` = to the end).
#[allow(clippy::too_many_arguments)]
pub fn train_supernet<B: AutodiffBackend>(
    space: &SearchSpace,
    topology: &Topology,
    data: &TrainData,
    settings: &SupernetSettings,
    from: Option<(&RoleWeights, &str)>,
    dir: &Path,
    device: &B::Device,
    stop_after: Option<usize>,
    progress: &mut dyn FnMut(StepInfo),
) -> Result<TrainedSupernet<B::InnerBackend>, EvalError> {
    settings.check()?;
    if data.train_items == 0 {
        return Err(EvalError::Unsupported(
            "supernet: no training items in the latent cache".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let ck = Checkpoints {
        dir: dir.to_path_buf(),
        hash: settings_hash(space, topology, settings, from.map(|f| f.1)),
    };
    let (sup_arch, unet, _) =
        init_supernet::<B>(space, topology, settings.seed, from.map(|f| f.0), device)?;
    let (mut state, mut unet) = RunState::resume(&ck, unet, settings.ema(), device)?;
    let smallest_arch = space
        .smallest_arch(topology)
        .ok_or_else(|| EvalError::Unsupported(format!("topology {topology} has no candidate")))?;
    let smallest = SubNet::new(&smallest_arch, &sup_arch)?;
    let acp = settings.recipe.alphas_cumprod();
    let mut run = 0;
    for k in state.start..settings.steps {
        if stop_after.is_some_and(|n| run >= n) {
            break;
        }
        let (nb, ctx, mut rng) = draw_step::<B>(
            data,
            (settings.seed, k),
            (settings.batch, settings.cond_dropout),
            &settings.recipe,
            &acp,
            device,
        );
        let sandwich = settings.rule == SupernetRule::Sandwich;
        let subs = step_subnets(
            space,
            topology,
            &sup_arch,
            sandwich.then_some(&smallest),
            settings.random_subnets,
            settings.sampling,
            &mut rng,
        )?;
        // The sandwich rule's order: largest, then each sub-network's loss and distillation.
        let (mut task, mut total, mut teacher) = (None, None, None);
        if sandwich {
            // The largest: trained, and the distillation target.
            let pred = unet.forward(nb.xt.clone(), nb.t.clone(), ctx.clone());
            let l = weighted_mse(pred.clone(), nb.target.clone(), nb.weights.clone());
            add(&mut task, l.clone());
            add(&mut total, l);
            teacher = Some(pred.detach());
        }
        for sub in &subs {
            let pred = sub.forward(&unet, nb.xt.clone(), nb.t.clone(), ctx.clone());
            let l = weighted_mse(pred.clone(), nb.target.clone(), nb.weights.clone());
            add(&mut task, l.clone());
            add(&mut total, l);
            if let (Some(t), true) = (&teacher, settings.distill_weight > 0.0) {
                let d = (pred - t.clone()).powi_scalar(2).mean();
                add(&mut total, d * settings.distill_weight);
            }
        }
        let (task, total) = task.zip(total).expect("a step trains a sub-network");
        let n = (subs.len() + usize::from(sandwich)) as f64;
        let value = task.into_scalar().elem::<f64>() / n;
        state.check_finite(&ck, "supernet loss", value, (k, settings.checkpoint_every))?;
        let grads = GradientsParams::from_grads((total / n).backward(), &unet);
        let every = settings.checkpoint_every;
        let lr = settings.lr_at(k);
        unet = state.step(
            &ck,
            (k, settings.steps, every),
            lr,
            unet,
            grads,
            value as f32,
        )?;
        run += 1;
        let done = k + 1;
        progress(StepInfo {
            step: done,
            steps: settings.steps,
            loss: value as f32,
        });
    }
    let (unet, losses) = state.finish(unet);
    Ok(TrainedSupernet {
        arch: sup_arch,
        unet,
        losses,
        steps_run: run,
    })
}

/// `acc + x`, or `x` for an empty `acc`.
fn add<T: std::ops::Add<Output = T>>(acc: &mut Option<T>, x: T) {
    *acc = Some(match acc.take() {
        Some(a) => a + x,
        None => x,
    });
}

/// Hash of everything that determines a supernet's weights (space, topology, settings, the
/// label of a pretrained start): its cache key and the settings hash recorded beside an
/// artifact.
pub fn settings_hash(
    space: &SearchSpace,
    topology: &Topology,
    settings: &SupernetSettings,
    from: Option<&str>,
) -> String {
    settings_hash_of(&serde_json::json!({
        "space": space,
        "topology": topology,
        "settings": settings,
        "from": from,
        "version": 1,
    }))
}

#[cfg(test)]
mod tests;
