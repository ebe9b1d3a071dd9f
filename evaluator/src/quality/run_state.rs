//! The state a resumable U-Net training run carries from step to step (a supernet's or a
//! model's): the weights, AdamW, the EMA once its window has begun, the losses so far; restored
//! from the run's latest checkpoint, and checkpointed when due.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use unas_runtime::UNet2DConditionModel;

use super::checkpoint::{CheckpointState, Checkpoints};
use super::train::Ema;
use crate::EvalError;

type Unet<B> = UNet2DConditionModel<B>;

/// A run's state between steps, besides the weights being trained (which the caller holds).
pub(crate) struct RunState<B: AutodiffBackend> {
    opt: OptimizerAdaptor<AdamW, Unet<B>, B>,
    /// First step inside the EMA window and the EMA's decay (`None`: no EMA).
    ema_cfg: Option<(usize, f64)>,
    ema: Option<Ema<B::InnerBackend, Unet<B::InnerBackend>>>,
    /// The loss of every step done.
    pub losses: Vec<f32>,
    /// Steps done (the first step this call runs).
    pub start: usize,
}

impl<B: AutodiffBackend> RunState<B> {
    /// A fresh AdamW for `unet`, or the state and weights of the latest checkpoint in `ck`.
    pub fn resume(
        ck: &Checkpoints,
        unet: Unet<B>,
        ema_cfg: Option<(usize, f64)>,
        device: &B::Device,
    ) -> Result<(Self, Unet<B>), EvalError> {
        let opt = AdamWConfig::new().init::<B, Unet<B>>();
        let ema_started = |step: usize| ema_cfg.is_some_and(|(s, _)| step > s);
        Ok(
            match ck.restore(unet.clone(), opt.clone(), ema_started, device)? {
                None => (
                    Self {
                        opt,
                        ema_cfg,
                        ema: None,
                        losses: Vec::new(),
                        start: 0,
                    },
                    unet,
                ),
                Some(r) => (
                    Self {
                        opt: r.optimizer,
                        ema_cfg,
                        ema: r
                            .ema
                            .zip(ema_cfg)
                            .map(|(avg, (_, decay))| Ema::new(avg, decay)),
                        losses: r.state.losses,
                        start: r.state.step,
                    },
                    r.model,
                ),
            },
        )
    }

    /// `Err(Diverged)` when step `k`'s (0-based) `loss` is NaN or infinite, naming the step
    /// and the last good checkpoint (written every `every` steps into `ck`), which is kept.
    pub fn check_finite(
        &self,
        ck: &Checkpoints,
        what: &str,
        loss: f64,
        (k, every): (usize, usize),
    ) -> Result<(), EvalError> {
        if loss.is_finite() {
            return Ok(());
        }
        let last = self.losses.len() / every * every;
        let kept = if last == 0 {
            format!("no checkpoint was written yet (every {every} steps)")
        } else {
            format!(
                "the last good checkpoint (step {last}) is in {}",
                ck.dir.display()
            )
        };
        Err(EvalError::Diverged(format!(
            "{what} {loss} at step {}; {kept}",
            k + 1
        )))
    }

    /// Step `k` (0-based) of `steps`: the optimiser step of `unet` at learning rate `lr`, the
    /// EMA update inside its window, the loss recorded, and a checkpoint every `every` steps
    /// and at the end. Returns the updated weights.
    pub fn step(
        &mut self,
        ck: &Checkpoints,
        (k, steps, every): (usize, usize, usize),
        lr: f64,
        unet: Unet<B>,
        grads: GradientsParams,
        loss: f32,
    ) -> Result<Unet<B>, EvalError> {
        let unet = self.opt.step(lr, unet, grads);
        if let Some((ema_start, decay)) = self.ema_cfg {
            if k >= ema_start {
                let current = unet.valid();
                match &mut self.ema {
                    None => self.ema = Some(Ema::new(current, decay)),
                    Some(e) => e.update(&current),
                }
            }
        }
        self.losses.push(loss);
        let done = k + 1;
        if done % every == 0 || done == steps {
            let state = CheckpointState {
                step: done,
                losses: self.losses.clone(),
                settings_hash: ck.hash.clone(),
            };
            let avg = self.ema.as_ref().map(|e| e.average());
            ck.write(&state, &unet, &self.opt, avg)?;
        }
        Ok(unet)
    }

    /// The final weights (the EMA when the run has one) and the losses.
    pub fn finish(self, unet: Unet<B>) -> (Unet<B::InnerBackend>, Vec<f32>) {
        let unet = match self.ema {
            Some(e) => e.into_inner(),
            None => unet.valid(),
        };
        (unet, self.losses)
    }
}
