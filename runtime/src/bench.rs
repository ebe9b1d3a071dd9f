//! Timing the U-Net forward pass on a device: warm-up runs, then repeats; median and IQR.
//!
//! Weights are random (the architecture, not the values, sets the time). Each timed run ends
//! with a device synchronisation, so asynchronous backends are measured to completion.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use serde::Serialize;
use unas_space::UNetArch;

#[cfg(feature = "cuda")]
use crate::device::Cuda;
use crate::device::{Cpu, Device};
use crate::error::RuntimeError;
use crate::unet::UNet2DConditionModel;
#[cfg(feature = "cuda")]
use burn::backend::cuda::CudaDevice;

/// What to time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BenchConfig {
    /// Latent height and width (64 for 512 px with SD's VAE).
    pub latent: usize,
    /// Batch (2 = one classifier-free-guided image).
    pub batch: usize,
    /// Text tokens attended to (77 for CLIP).
    pub text_len: usize,
    /// Untimed runs first (allocation, autotuning, caches).
    pub warmup: usize,
    /// Timed runs.
    pub repeats: usize,
}

impl Default for BenchConfig {
    /// 64x64 latent, batch 2, 77 tokens, 1 warm-up, 5 repeats.
    fn default() -> Self {
        Self {
            latent: 64,
            batch: 2,
            text_len: 77,
            warmup: 1,
            repeats: 5,
        }
    }
}

/// Summary of repeated timings, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Timing {
    /// Every timed run, in order.
    pub samples_ms: Vec<f64>,
    /// Median.
    pub median_ms: f64,
    /// First quartile.
    pub q1_ms: f64,
    /// Third quartile.
    pub q3_ms: f64,
}

impl Timing {
    /// Summarises samples (quartiles interpolated linearly, as numpy's default).
    pub fn from_samples(samples_ms: Vec<f64>) -> Self {
        let mut sorted = samples_ms.clone();
        sorted.sort_by(f64::total_cmp);
        Self {
            median_ms: quantile(&sorted, 0.5),
            q1_ms: quantile(&sorted, 0.25),
            q3_ms: quantile(&sorted, 0.75),
            samples_ms,
        }
    }

    /// Interquartile range.
    pub fn iqr_ms(&self) -> f64 {
        self.q3_ms - self.q1_ms
    }
}

/// Linear-interpolated quantile of sorted values (NaN when empty).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Progress of a benchmark, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The model is built; `total` runs (warm-up + timed) follow.
    Built {
        /// Runs to come.
        total: usize,
    },
    /// One run finished (`done` of `total`).
    Run {
        /// Runs finished.
        done: usize,
        /// Runs in all.
        total: usize,
    },
}

/// Result of [`bench_unet`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    /// What was timed.
    pub config: BenchConfig,
    /// Parameters of the model.
    pub params: usize,
    /// Building the model with random weights.
    pub build_ms: f64,
    /// One forward pass.
    pub forward: Timing,
}

fn inputs<B: Backend>(
    arch: &UNetArch,
    cfg: &BenchConfig,
    device: &B::Device,
) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 3>) {
    let st = &arch.stem;
    let n = Distribution::Normal(0.0, 1.0);
    let sample = Tensor::random(
        [cfg.batch, st.in_channels, cfg.latent, cfg.latent],
        n,
        device,
    );
    let timesteps = Tensor::<B, 1>::from_floats([500.0f32].as_slice(), device).expand([cfg.batch]);
    let context = Tensor::random([cfg.batch, cfg.text_len, st.cross_attention_dim], n, device);
    (sample, timesteps, context)
}

fn build<B: Backend>(
    arch: &UNetArch,
    cfg: &BenchConfig,
    device: &B::Device,
) -> Result<UNet2DConditionModel<B>, RuntimeError> {
    if cfg.batch == 0 || cfg.latent == 0 || cfg.text_len == 0 || cfg.repeats == 0 {
        return Err(RuntimeError::Input(
            "latent, batch, text length and repeats must be at least 1".into(),
        ));
    }
    let model = UNet2DConditionModel::<B>::init_materialized(arch, device)?;
    model.check_inputs(
        [cfg.batch, arch.stem.in_channels, cfg.latent, cfg.latent],
        [cfg.batch],
        [cfg.batch, cfg.text_len, arch.stem.cross_attention_dim],
    )?;
    Ok(model)
}

fn sync<B: Backend>(device: &B::Device) -> Result<(), RuntimeError> {
    B::sync(device).map_err(|e| RuntimeError::Device(format!("synchronisation failed: {e:?}")))
}

/// Times the forward pass of `arch` with random weights on `device`.
pub fn bench_unet<B: Backend>(
    arch: &UNetArch,
    cfg: &BenchConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<BenchReport, RuntimeError> {
    let t0 = Instant::now();
    let model = build::<B>(arch, cfg, device)?;
    sync::<B>(device)?;
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    let total = cfg.warmup + cfg.repeats;
    progress(Progress::Built { total });
    let (sample, timesteps, context) = inputs::<B>(arch, cfg, device);
    sync::<B>(device)?;
    let mut samples = Vec::with_capacity(cfg.repeats);
    for run in 0..total {
        let t = Instant::now();
        let out = model.forward(sample.clone(), timesteps.clone(), context.clone());
        sync::<B>(device)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        drop(out);
        if run >= cfg.warmup {
            samples.push(ms);
        }
        progress(Progress::Run {
            done: run + 1,
            total,
        });
    }
    Ok(BenchReport {
        config: cfg.clone(),
        params: model.num_params(),
        build_ms,
        forward: Timing::from_samples(samples),
    })
}

/// Time spent in one kind of module during a forward pass.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KindTime {
    /// Module type (`resnet`, `attention`, ...).
    pub kind: String,
    /// Runs per forward pass.
    pub runs: usize,
    /// Median over the timed passes of the summed time per pass.
    pub median_ms: f64,
}

/// Times every plan step separately (synchronising after each), summed per module kind.
/// Slower than [`bench_unet`] (no overlap between steps); for finding what dominates.
pub fn profile_unet<B: Backend>(
    arch: &UNetArch,
    cfg: &BenchConfig,
    device: &B::Device,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<KindTime>, RuntimeError> {
    let plan = arch.plan()?;
    let model = build::<B>(arch, cfg, device)?;
    let total = cfg.warmup + cfg.repeats;
    progress(Progress::Built { total });
    let (sample, timesteps, context) = inputs::<B>(arch, cfg, device);
    let mut per_kind: BTreeMap<&str, (usize, Vec<f64>)> = BTreeMap::new();
    for run in 0..total {
        let mut state = model.start(sample.clone(), timesteps.clone(), context.clone());
        let mut pass: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
        for (i, step) in model.steps().iter().enumerate() {
            let t = Instant::now();
            model.step(i, &mut state);
            sync::<B>(device)?;
            let e = pass
                .entry(plan.modules[step.module].kind.type_name())
                .or_default();
            e.0 += 1;
            e.1 += t.elapsed().as_secs_f64() * 1e3;
        }
        if run >= cfg.warmup {
            for (k, (runs, ms)) in pass {
                let e = per_kind.entry(k).or_default();
                e.0 = runs;
                e.1.push(ms);
            }
        }
        progress(Progress::Run {
            done: run + 1,
            total,
        });
    }
    Ok(per_kind
        .into_iter()
        .map(|(kind, (runs, ms))| KindTime {
            kind: kind.to_string(),
            runs,
            median_ms: Timing::from_samples(ms).median_ms,
        })
        .collect())
}

/// [`bench_unet`] on a [`Device`] (checked first: a missing CUDA driver is an error).
pub fn bench_on(
    device: Device,
    arch: &UNetArch,
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<BenchReport, RuntimeError> {
    device.check()?;
    match device {
        Device::Cpu => bench_unet::<Cpu>(arch, cfg, &Default::default(), progress),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => bench_unet::<Cuda>(arch, cfg, &CudaDevice::new(i), progress),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
    }
}

/// [`profile_unet`] on a [`Device`] (checked first).
pub fn profile_on(
    device: Device,
    arch: &UNetArch,
    cfg: &BenchConfig,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<KindTime>, RuntimeError> {
    device.check()?;
    match device {
        Device::Cpu => profile_unet::<Cpu>(arch, cfg, &Default::default(), progress),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => profile_unet::<Cuda>(arch, cfg, &CudaDevice::new(i), progress),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_match_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [25, 50, 75]) = [2, 3, 4]
        let t = Timing::from_samples(vec![10.0, 1.0, 4.0, 2.0, 3.0]);
        assert_eq!((t.q1_ms, t.median_ms, t.q3_ms), (2.0, 3.0, 4.0));
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) = [1.75, 2.5, 3.25]
        let t = Timing::from_samples(vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!((t.q1_ms, t.median_ms, t.q3_ms), (1.75, 2.5, 3.25));
        assert_eq!(t.iqr_ms(), 1.5);
    }

    #[test]
    fn bench_and_profile_tiny() {
        let arch = unas_space::preset("tiny");
        let cfg = BenchConfig {
            latent: 8,
            batch: 1,
            text_len: 7,
            warmup: 0,
            repeats: 2,
        };
        let device = Default::default();
        let mut events = Vec::new();
        let report =
            bench_unet::<crate::device::Cpu>(&arch, &cfg, &device, &mut |p| events.push(p))
                .unwrap();
        assert_eq!(report.forward.samples_ms.len(), 2);
        assert!(report.forward.median_ms > 0.0);
        assert_eq!(report.params as u64, arch.params().unwrap());
        assert_eq!(events.last(), Some(&Progress::Run { done: 2, total: 2 }));
        let kinds = profile_unet::<crate::device::Cpu>(&arch, &cfg, &device, &mut |_| {}).unwrap();
        let resnet = kinds.iter().find(|k| k.kind == "resnet").unwrap();
        // tiny: 4 stages x 2 down + 2 mid + 4 x 3 up ResNets.
        assert_eq!(resnet.runs, 8 + 2 + 12);
        // A latent not divisible by the downsampling factor is an input error.
        let bad = BenchConfig { latent: 12, ..cfg };
        assert!(matches!(
            bench_unet::<crate::device::Cpu>(&arch, &bad, &device, &mut |_| {}),
            Err(RuntimeError::Input(_))
        ));
    }
}
