//! Measured latency on the device at hand: the candidate U-Net with random weights, one
//! denoising step timed after warm-up runs, each run ending with a device synchronisation;
//! median and IQR of the repeats. Also times single modules for lookup tables.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use unas_runtime::bench::{bench_on, BenchConfig, Timing};
use unas_runtime::device::{Cpu, Device};
use unas_runtime::{UNet2DConditionModel, UNetBlock};
use unas_space::{ModuleKind, PlanModule, Step, UNetArch};

use super::{BlockLatency, Dtype, LatencyModel, LatencyReport, LatencySetting};
use crate::EvalError;

/// Warm-up and repeat counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repeats {
    /// Untimed runs first.
    pub warmup: usize,
    /// Timed runs (median and IQR over these).
    pub repeats: usize,
}

impl Default for Repeats {
    /// 2 warm-up runs, 9 timed runs.
    fn default() -> Self {
        Self {
            warmup: 2,
            repeats: 9,
        }
    }
}

/// The measured latency model. The total is the median end-to-end forward time; with
/// `breakdown`, a second series of passes synchronises after every module to attribute time to
/// blocks (those passes are slower and are not part of the total).
#[derive(Clone, Debug)]
pub struct MeasuredModel {
    /// Where to run.
    pub device: Device,
    /// Warm-up and repeats.
    pub repeats: Repeats,
    /// Also time every module inside the network (CPU only).
    pub breakdown: bool,
}

fn check_dtype(device: Device, dtype: Dtype) -> Result<(), EvalError> {
    if dtype != Dtype::F32 {
        return Err(EvalError::Unsupported(format!(
            "measuring on {device} supports f32 only (got {}); f16 is slower than f32 on burn's \
             CPU backend",
            dtype.name()
        )));
    }
    Ok(())
}

impl LatencyModel for MeasuredModel {
    fn describe(&self) -> String {
        format!("measured:{} ({})", self.device, self.device.describe())
    }

    fn predict(
        &self,
        arch: &UNetArch,
        setting: &LatencySetting,
    ) -> Result<LatencyReport, EvalError> {
        check_dtype(self.device, setting.dtype)?;
        let cfg = BenchConfig {
            latent: setting.latent,
            batch: setting.batch,
            text_len: setting.text_len,
            warmup: self.repeats.warmup,
            repeats: self.repeats.repeats,
        };
        let report = bench_on(self.device, arch, &cfg, &mut |_| {})
            .map_err(|e| EvalError::Measure(e.to_string()))?;
        let blocks = if self.breakdown && self.device == Device::Cpu {
            in_network_blocks::<Cpu>(arch, setting, self.repeats, &Default::default())?
        } else {
            Vec::new()
        };
        Ok(LatencyReport {
            total_ms: report.forward.median_ms,
            blocks,
            overhead_ms: 0.0,
            iqr_ms: Some(report.forward.iqr_ms()),
            source: format!("measured:{}", self.device),
        })
    }
}

/// Median time of every module inside the network (synchronising after each step).
fn in_network_blocks<B: Backend>(
    arch: &UNetArch,
    s: &LatencySetting,
    repeats: Repeats,
    device: &B::Device,
) -> Result<Vec<BlockLatency>, EvalError> {
    let plan = arch.plan()?;
    let model = UNet2DConditionModel::<B>::from_plan(arch, &plan, device);
    let n = Distribution::Normal(0.0, 1.0);
    let st = &arch.stem;
    let sample = Tensor::<B, 4>::random([s.batch, st.in_channels, s.latent, s.latent], n, device);
    let timesteps = Tensor::<B, 1>::from_floats(vec![500.0f32; s.batch].as_slice(), device);
    let context = Tensor::<B, 3>::random([s.batch, s.text_len, st.cross_attention_dim], n, device);
    let sync = || B::sync(device).map_err(|e| EvalError::Measure(format!("{e:?}")));
    let mut per_module: Vec<Vec<f64>> = vec![Vec::new(); plan.modules.len()];
    for run in 0..repeats.warmup + repeats.repeats {
        let mut state = model.start(sample.clone(), timesteps.clone(), context.clone());
        let mut pass = vec![0.0; plan.modules.len()];
        for (i, step) in plan.steps.iter().enumerate() {
            sync()?;
            let t = Instant::now();
            model.step(i, &mut state);
            sync()?;
            pass[step.module] += t.elapsed().as_secs_f64() * 1e3;
        }
        if run >= repeats.warmup {
            for (m, ms) in pass.into_iter().enumerate() {
                per_module[m].push(ms);
            }
        }
    }
    Ok(plan
        .modules
        .iter()
        .zip(per_module)
        .map(|(m, ms)| BlockLatency {
            key: m.key.clone(),
            section: m.section,
            kind: m.kind.type_name(),
            ms: Timing::from_samples(ms).median_ms,
        })
        .collect())
}

/// Times one plan step's module in isolation (random weights and inputs of the step's shapes;
/// an up-stage ResNet's skip concatenation is included) on the CPU backend.
pub fn time_module(
    arch: &UNetArch,
    module: &PlanModule,
    step: &Step,
    setting: &LatencySetting,
    repeats: Repeats,
) -> Result<Timing, EvalError> {
    check_dtype(Device::Cpu, setting.dtype)?;
    time_module_on::<Cpu>(arch, module, step, setting, repeats, &Default::default())
}

fn time_module_on<B: Backend>(
    arch: &UNetArch,
    module: &PlanModule,
    step: &Step,
    s: &LatencySetting,
    repeats: Repeats,
    device: &B::Device,
) -> Result<Timing, EvalError> {
    let block = UNetBlock::<B>::init(arch, module, device);
    let n = Distribution::Normal(0.0, 1.0);
    let b = s.batch;
    let h = s.latent / step.input_div;
    let (cin, _) = module.kind.channels();
    let skip_ch = step.pop_skip.unwrap_or(0);
    let hidden = Tensor::<B, 4>::random([b, cin - skip_ch, h, h], n, device);
    let skip = (skip_ch > 0).then(|| Tensor::<B, 4>::random([b, skip_ch, h, h], n, device));
    let temb = Tensor::<B, 2>::random([b, arch.stem.time_embed_dim], n, device);
    let context = Tensor::<B, 3>::random([b, s.text_len, arch.stem.cross_attention_dim], n, device);
    let timesteps = Tensor::<B, 1>::from_floats(vec![500.0f32; b].as_slice(), device);
    let sync = || B::sync(device).map_err(|e| EvalError::Measure(format!("{e:?}")));
    sync()?;
    let mut samples = Vec::with_capacity(repeats.repeats);
    for run in 0..repeats.warmup + repeats.repeats {
        let t = Instant::now();
        match (&block, &module.kind) {
            (UNetBlock::TimeEmbedding(m), ModuleKind::TimeEmbedding { .. }) => {
                drop(m.forward(timesteps.clone()))
            }
            (UNetBlock::ConvIn(m), _) => drop(m.forward(hidden.clone())),
            (UNetBlock::Resnet(m), _) => {
                let x = match &skip {
                    Some(sk) => Tensor::cat(vec![hidden.clone(), sk.clone()], 1),
                    None => hidden.clone(),
                };
                drop(m.forward(x, temb.clone()))
            }
            (UNetBlock::Attention(m), _) => drop(m.forward(hidden.clone(), context.clone())),
            (UNetBlock::Downsample(m), _) => drop(m.forward(hidden.clone())),
            (UNetBlock::Upsample(m), _) => drop(m.forward(hidden.clone())),
            (UNetBlock::ConvOut(m), _) => drop(m.forward(hidden.clone())),
            (UNetBlock::TimeEmbedding(_), _) => unreachable!("block built from this module"),
        }
        sync()?;
        if run >= repeats.warmup {
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(Timing::from_samples(samples))
}
