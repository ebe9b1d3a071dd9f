//! Timing one training step of the proxy: forward, the recipe's weighted loss, backward through
//! burn's autodiff and an AdamW update, on random weights and data of the proxy's shapes.
//!
//! Each phase is timed separately (forward + loss, backward, optimiser) and the step as a whole;
//! `tools/bench/torch_train.py` times the same step in PyTorch eager for `unas bench train
//! --vs-torch`.

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use serde::Serialize;
use unas_runtime::bench::{Progress, Timing};
use unas_runtime::UNet2DConditionModel;
use unas_space::rng::Rng;
use unas_space::UNetArch;

use super::train::{init_seeded, noisy_batch, normal, weighted_mse, Recipe};
use crate::EvalError;

/// What to time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrainBenchConfig {
    /// Latent height and width (16 in the CPU proxy).
    pub latent: usize,
    /// Batch (16 in the CPU proxy).
    pub batch: usize,
    /// Text tokens (16 in the CPU proxy).
    pub text_len: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// Timed steps.
    pub repeats: usize,
}

impl Default for TrainBenchConfig {
    /// The CPU proxy's shapes: latent 16, batch 16, 16 tokens; 2 warm-up + 5 timed steps.
    fn default() -> Self {
        Self {
            latent: 16,
            batch: 16,
            text_len: 16,
            warmup: 2,
            repeats: 5,
        }
    }
}

/// Result of [`bench_train`], in milliseconds per step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrainBenchReport {
    /// What was timed.
    pub config: TrainBenchConfig,
    /// Parameters of the model.
    pub params: usize,
    /// Forward pass and loss.
    pub forward: Timing,
    /// Backward pass (gradients of every parameter).
    pub backward: Timing,
    /// AdamW update.
    pub optimizer: Timing,
    /// The whole step.
    pub step: Timing,
    /// Loss of every step (warm-up included), to show the step trains.
    pub losses: Vec<f32>,
}

/// Times `cfg.warmup + cfg.repeats` training steps of `arch` (random weights from seed 0,
/// random latents and text embeddings, the DeciDiffusion recipe at learning rate 1e-3, burn's
/// default AdamW) on `device`.
pub fn bench_train<B: AutodiffBackend>(
    arch: &UNetArch,
    cfg: &TrainBenchConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainBenchReport, EvalError> {
    if cfg.batch == 0 || cfg.latent == 0 || cfg.text_len == 0 || cfg.repeats == 0 {
        return Err(EvalError::Unsupported(
            "latent, batch, text length and repeats must be at least 1".into(),
        ));
    }
    let st = &arch.stem;
    let sample = [cfg.batch, st.in_channels, cfg.latent, cfg.latent];
    let ctx = [cfg.batch, cfg.text_len, st.cross_attention_dim];
    let plan = arch.plan()?;
    let mut unet = init_seeded::<B, _>(device, 0, || {
        UNet2DConditionModel::<B>::from_plan(arch, &plan, device)
    });
    unet.check_inputs(sample, [cfg.batch], ctx)
        .map_err(EvalError::from)?;
    let recipe = Recipe::decidiffusion();
    let acp = recipe.alphas_cumprod();
    let mut rng = Rng::seed(0);
    let x0 = Tensor::<B, 4>::from_data(
        TensorData::new(normal(&mut rng, sample.iter().product()), sample),
        device,
    );
    let context = Tensor::<B, 3>::from_data(
        TensorData::new(normal(&mut rng, ctx.iter().product()), ctx),
        device,
    );
    let mut opt = AdamWConfig::new().init::<B, UNet2DConditionModel<B>>();
    let sync = |d: &B::Device| {
        B::sync(d).map_err(|e| EvalError::Measure(format!("synchronisation failed: {e:?}")))
    };
    let total = cfg.warmup + cfg.repeats;
    progress(Progress::Built { total });
    let (mut fwd, mut bwd, mut upd, mut all) = (vec![], vec![], vec![], vec![]);
    let mut losses = Vec::with_capacity(total);
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1e3;
    for run in 0..total {
        let timesteps: Vec<usize> = (0..cfg.batch)
            .map(|_| rng.below(recipe.timesteps))
            .collect();
        let noise = normal(&mut rng, sample.iter().product());
        sync(device)?;
        let t0 = Instant::now();
        let nb = noisy_batch(x0.clone(), &timesteps, noise, &recipe, &acp);
        let pred = unet.forward(nb.xt, nb.t, context.clone());
        let loss = weighted_mse(pred, nb.target, nb.weights);
        let value: f32 = loss.clone().into_scalar().elem::<f32>();
        let f = ms(t0);
        let t1 = Instant::now();
        let grads = GradientsParams::from_grads(loss.backward(), &unet);
        sync(device)?;
        let b = ms(t1);
        let t2 = Instant::now();
        unet = opt.step(recipe.lr, unet, grads);
        sync(device)?;
        let u = ms(t2);
        let s = ms(t0);
        losses.push(value);
        if run >= cfg.warmup {
            fwd.push(f);
            bwd.push(b);
            upd.push(u);
            all.push(s);
        }
        progress(Progress::Run {
            done: run + 1,
            total,
        });
    }
    Ok(TrainBenchReport {
        config: cfg.clone(),
        params: burn::module::Module::num_params(&unet),
        forward: Timing::from_samples(fwd),
        backward: Timing::from_samples(bwd),
        optimizer: Timing::from_samples(upd),
        step: Timing::from_samples(all),
        losses,
    })
}
