//! Training one architecture to a finished model (`unas train`): the seed's recipe (cosine
//! betas, v-prediction, zero terminal SNR, Min-SNR-γ; warm-up + cosine decay of the learning
//! rate, gradient clipping, an EMA over the last part of training) on the latent cache
//! (posterior mean + log-variance, a latent sampled every step; caption embeddings, some
//! replaced by the empty one), optionally distilled from a teacher U-Net as BK-SDM does (Kim et
//! al. 2023): task loss + output loss ‖ŷ_s − ŷ_t‖² + feature loss Σ_l ‖f_s^l − f_t^l‖² over the
//! outputs of every down, mid and up section both networks have with the same shape, matched
//! by role (section), never by position; each weight configurable.
//!
//! Checkpoints as the supernet's ([`super::checkpoint`]): every step's randomness comes from a
//! generator seeded with (seed, step), so a resumed run reaches the same final weights as an
//! uninterrupted one; a NaN or infinite loss stops the run with the step named, the last good
//! checkpoint kept.

use std::path::Path;

use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};
use unas_runtime::{InheritStats, RoleWeights, UNet2DConditionModel};
use unas_space::{RoleSection, UNetArch};

use super::checkpoint::{settings_hash_of, Checkpoints};
use super::run_state::RunState;
use super::supernet::{draw_step, StepInfo, TrainData};
use super::train::{clip_grad_norm, init_seeded, weighted_mse, LrSchedule, Recipe};
use crate::EvalError;

/// Weights of the distillation loss terms (used only with a teacher).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillWeights {
    /// The task (denoising) loss (default 1).
    pub task: f64,
    /// ‖student output − teacher output‖² (default 1, as BK-SDM).
    pub output: f64,
    /// Σ over matched sections of ‖student feature − teacher feature‖² (default 1, as BK-SDM).
    pub feature: f64,
}

impl Default for DistillWeights {
    fn default() -> Self {
        Self {
            task: 1.0,
            output: 1.0,
            feature: 1.0,
        }
    }
}

/// Settings of a model's training; every field is part of the run's identity (hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelTrainSettings {
    /// Optimiser steps (default 1000).
    pub steps: usize,
    /// Minibatch (default 16).
    pub batch: usize,
    /// Checkpoint every this many steps (default 100).
    pub checkpoint_every: usize,
    /// Seed of the initialisation and of every step's draws (default 0).
    pub seed: u64,
    /// Share of captions replaced by the empty one (default 0.1).
    pub cond_dropout: f64,
    /// The recipe (default the calibration ground truth's: DeciDiffusion's schedule and loss,
    /// lr 1e-3 with 30 warm-up steps and cosine decay, gradient norm clipped to 1, EMA over
    /// the last half).
    pub recipe: Recipe,
    /// Distillation weights (with a teacher).
    pub distill: DistillWeights,
}

impl Default for ModelTrainSettings {
    fn default() -> Self {
        Self {
            steps: 1000,
            batch: 16,
            checkpoint_every: 100,
            seed: 0,
            cond_dropout: 0.1,
            recipe: Recipe {
                lr_schedule: LrSchedule::Cosine,
                warmup_steps: 30,
                max_grad_norm: Some(1.0),
                ema_fraction: 0.5,
                ..Recipe::decidiffusion()
            },
            distill: DistillWeights::default(),
        }
    }
}

impl ModelTrainSettings {
    /// Checks the settings; the error names the field.
    pub fn check(&self) -> Result<(), EvalError> {
        let bad = |f: &str, m: &str| Err(EvalError::Unsupported(format!("train.{f}: {m}")));
        if self.steps == 0 {
            return bad("steps", "must be at least 1");
        }
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1");
        }
        if !(self.recipe.lr > 0.0 && self.recipe.lr.is_finite()) {
            return bad("lr", "must be positive");
        }
        if !(0.0..=1.0).contains(&self.cond_dropout) {
            return bad("cond_dropout", "must be in [0, 1]");
        }
        if let Err(m) = self.recipe.ema_window(self.steps) {
            return bad("ema_fraction", &m);
        }
        let d = &self.distill;
        for (f, v) in [
            ("task", d.task),
            ("output", d.output),
            ("feature", d.feature),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(&format!("distill.{f}"), "must be >= 0");
            }
        }
        Ok(())
    }

    /// First step inside the EMA window, and its decay.
    fn ema(&self) -> Option<(usize, f64)> {
        self.recipe
            .ema_window(self.steps)
            .ok()
            .flatten()
            .map(|w| (self.steps - w.window, w.decay))
    }
}

/// A frozen teacher: its architecture, weights (on the inner, non-autodiff backend) and a
/// label naming it (part of the settings hash).
pub struct Teacher<'a, B: Backend> {
    /// Architecture.
    pub arch: &'a UNetArch,
    /// Weights.
    pub unet: &'a UNet2DConditionModel<B>,
    /// Label (folder and arch hash, or supernet id).
    pub label: &'a str,
}

/// Where the run's student starts: random (from the seed), or these role-addressed weights
/// where shapes match (a teacher's, a supernet's sub-network), with a label.
pub type Init<'a> = Option<(&'a RoleWeights, &'a str)>;

/// The result of a run.
pub struct TrainedModel<B: Backend> {
    /// The weights (the EMA when the recipe has one).
    pub unet: UNet2DConditionModel<B>,
    /// Loss of every step (the weighted total when distilling).
    pub losses: Vec<f32>,
    /// Steps run in this call (0 when the run was already complete).
    pub steps_run: usize,
    /// Tensors copied from the initial weights, and left fresh (`None` from scratch).
    pub inherited: Option<InheritStats>,
    /// Sections whose outputs the feature loss compared (with a teacher).
    pub feature_sections: Vec<String>,
}

/// For each down, mid and up section of `arch`, the index of its last forward step (whose
/// output is the section's output), in forward order.
pub fn section_outputs(arch: &UNetArch) -> Result<Vec<(RoleSection, usize)>, EvalError> {
    let plan = arch.plan()?;
    let roles = plan.roles(arch.stages());
    let mut out: Vec<(RoleSection, usize)> = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let section = roles[step.module].section;
        if section == RoleSection::Stem {
            continue;
        }
        match out.last_mut() {
            Some((s, last)) if *s == section => *last = i,
            _ => out.push((section, i)),
        }
    }
    Ok(out)
}

/// Runs `unet` and returns its output `[b, c, h, w]` and the outputs of the sections at
/// `points` (step indices from [`section_outputs`]), in that order.
fn forward_with_features<B: Backend>(
    unet: &UNet2DConditionModel<B>,
    points: &[usize],
    xt: Tensor<B, 4>,
    t: Tensor<B, 1>,
    ctx: Tensor<B, 3>,
) -> (Tensor<B, 4>, Vec<Tensor<B, 4>>) {
    let mut state = unet.start(xt, t, ctx);
    let mut feats = Vec::with_capacity(points.len());
    for i in 0..unet.steps().len() {
        unet.step(i, &mut state);
        if points.contains(&i) {
            feats.push(state.hidden.clone());
        }
    }
    (state.hidden, feats)
}

fn section_name(s: RoleSection) -> String {
    match s {
        RoleSection::Stem => "stem".into(),
        RoleSection::Down(i) => format!("down {i}"),
        RoleSection::Mid => "mid".into(),
        RoleSection::Up(i) => format!("up (mirrors down {i})"),
    }
}

/// Hash of everything that determines a run's weights: its checkpoints' key.
pub fn settings_hash(
    arch: &UNetArch,
    settings: &ModelTrainSettings,
    data: &str,
    init: Option<&str>,
    teacher: Option<&str>,
) -> String {
    settings_hash_of(&serde_json::json!({
        "arch": arch,
        "settings": settings,
        "data": data,
        "init": init,
        "teacher": teacher,
        "version": 1,
    }))
}

/// Trains (or resumes, from the checkpoints in `dir`) `arch`; see the module docs. `data_label`
/// names the data (part of the hash). `stop_after` ends the call early after that many steps
/// of this call (tests interrupt a run this way; `None` = to the end).
#[allow(clippy::too_many_arguments)]
pub fn train_model<B: AutodiffBackend>(
    arch: &UNetArch,
    data: &TrainData,
    data_label: &str,
    settings: &ModelTrainSettings,
    init: Init,
    teacher: Option<&Teacher<B::InnerBackend>>,
    dir: &Path,
    device: &B::Device,
    stop_after: Option<usize>,
    progress: &mut dyn FnMut(StepInfo),
) -> Result<TrainedModel<B::InnerBackend>, EvalError> {
    settings.check()?;
    if data.train_items == 0 {
        return Err(EvalError::Unsupported(
            "train: no training items in the latent cache".into(),
        ));
    }
    let io = |p: &Path, e: std::io::Error| EvalError::File {
        file: p.to_path_buf(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let ck = Checkpoints {
        dir: dir.to_path_buf(),
        hash: settings_hash(
            arch,
            settings,
            data_label,
            init.map(|i| i.1),
            teacher.map(|t| t.label),
        ),
    };
    let plan = arch.plan()?;
    let mut unet = init_seeded::<B, _>(device, settings.seed, || {
        UNet2DConditionModel::<B>::from_plan(arch, &plan, device)
    });
    let mut inherited = None;
    if let Some((w, _)) = init {
        let (u, stats) = w.inherit(arch, unet)?;
        unet = u;
        inherited = Some(stats);
    }
    // Feature points: the sections both networks have, by role.
    let (student_points, teacher_points, names) = match teacher {
        None => (Vec::new(), Vec::new(), Vec::new()),
        Some(t) => {
            let ts = section_outputs(t.arch)?;
            let mut sp = Vec::new();
            let mut tp = Vec::new();
            let mut names = Vec::new();
            for (s, i) in section_outputs(arch)? {
                if let Some((_, j)) = ts.iter().find(|(r, _)| *r == s) {
                    sp.push(i);
                    tp.push(*j);
                    names.push(section_name(s));
                }
            }
            (sp, tp, names)
        }
    };
    let (mut state, mut unet) = RunState::resume(&ck, unet, settings.ema(), device)?;
    let recipe = &settings.recipe;
    let acp = recipe.alphas_cumprod();
    let w = &settings.distill;
    // Which matched sections also match in shape (known after the first forward).
    let mut shape_ok: Option<Vec<bool>> = None;
    let mut run = 0;
    for k in state.start..settings.steps {
        if stop_after.is_some_and(|n| run >= n) {
            break;
        }
        let (nb, ctx, _) = draw_step::<B>(
            data,
            (settings.seed, k),
            (settings.batch, settings.cond_dropout),
            recipe,
            &acp,
            device,
        );
        let (pred, feats) = forward_with_features(
            &unet,
            &student_points,
            nb.xt.clone(),
            nb.t.clone(),
            ctx.clone(),
        );
        let task = weighted_mse(pred.clone(), nb.target.clone(), nb.weights.clone());
        let total = match teacher {
            None => task.clone(),
            Some(t) => {
                let (t_pred, t_feats) = forward_with_features(
                    t.unet,
                    &teacher_points,
                    nb.xt.clone().inner(),
                    nb.t.clone().inner(),
                    ctx.clone().inner(),
                );
                let ok = shape_ok.get_or_insert_with(|| {
                    feats
                        .iter()
                        .zip(&t_feats)
                        .map(|(a, b)| a.dims() == b.dims())
                        .collect()
                });
                let t_pred = Tensor::<B, 4>::from_inner(t_pred);
                let mut total = task.clone() * w.task
                    + (pred.clone() - t_pred).powi_scalar(2).mean() * w.output;
                if w.feature > 0.0 {
                    for ((f, tf), ok) in feats.into_iter().zip(t_feats).zip(ok.iter()) {
                        if *ok {
                            let tf = Tensor::<B, 4>::from_inner(tf);
                            total = total + (f - tf).powi_scalar(2).mean() * w.feature;
                        }
                    }
                }
                total
            }
        };
        let value = total.clone().into_scalar().elem::<f64>();
        state.check_finite(&ck, "loss", value, (k, settings.checkpoint_every))?;
        let mut grads = GradientsParams::from_grads(total.backward(), &unet);
        if let Some(max) = recipe.max_grad_norm {
            clip_grad_norm(&unet, &mut grads, max);
        }
        let every = settings.checkpoint_every;
        let lr = recipe.lr_at(k, settings.steps);
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
    let feature_sections = match &shape_ok {
        Some(ok) => names
            .into_iter()
            .zip(ok)
            .filter(|(_, ok)| **ok)
            .map(|(n, _)| n)
            .collect(),
        None => names,
    };
    let (unet, losses) = state.finish(unet);
    Ok(TrainedModel {
        unet,
        losses,
        steps_run: run,
        inherited,
        feature_sections,
    })
}
