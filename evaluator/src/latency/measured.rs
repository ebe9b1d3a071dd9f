//! Measured latency on the device at hand: the candidate U-Net with random weights, one
//! denoising step timed after warm-up runs, each run ending with a device synchronisation;
//! median and IQR of the repeats. Also times every step inside the network, for per-block
//! breakdowns and lookup tables.

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};
use unas_runtime::bench::{bench_on, BenchConfig, Timing};
use unas_runtime::device::{Cpu, Device};
use unas_runtime::UNet2DConditionModel;
use unas_space::UNetArch;

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
            in_network_blocks(arch, setting, self.repeats)?
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

/// Median time of every plan step of `arch` inside the network (CPU backend): passes that
/// synchronise before and after each step, so each step's time is its own; warm-up passes first.
pub fn step_medians(
    arch: &UNetArch,
    s: &LatencySetting,
    repeats: Repeats,
) -> Result<Vec<f64>, EvalError> {
    check_dtype(Device::Cpu, s.dtype)?;
    step_medians_on::<Cpu>(arch, s, repeats, &Default::default())
}

fn step_medians_on<B: Backend>(
    arch: &UNetArch,
    s: &LatencySetting,
    repeats: Repeats,
    device: &B::Device,
) -> Result<Vec<f64>, EvalError> {
    let plan = arch.plan()?;
    let model = UNet2DConditionModel::<B>::from_plan(arch, &plan, device);
    model.check_inputs(
        [s.batch, arch.stem.in_channels, s.latent, s.latent],
        [s.batch],
        [s.batch, s.text_len, arch.stem.cross_attention_dim],
    )?;
    let n = Distribution::Normal(0.0, 1.0);
    let st = &arch.stem;
    let sample = Tensor::<B, 4>::random([s.batch, st.in_channels, s.latent, s.latent], n, device);
    let timesteps = Tensor::<B, 1>::from_floats(vec![500.0f32; s.batch].as_slice(), device);
    let context = Tensor::<B, 3>::random([s.batch, s.text_len, st.cross_attention_dim], n, device);
    let sync = || B::sync(device).map_err(|e| EvalError::Measure(format!("{e:?}")));
    let mut per_step: Vec<Vec<f64>> = vec![Vec::new(); plan.steps.len()];
    for run in 0..repeats.warmup + repeats.repeats {
        let mut state = model.start(sample.clone(), timesteps.clone(), context.clone());
        for (i, times) in per_step.iter_mut().enumerate() {
            sync()?;
            let t = Instant::now();
            model.step(i, &mut state);
            sync()?;
            if run >= repeats.warmup {
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    Ok(per_step
        .into_iter()
        .map(|t| Timing::from_samples(t).median_ms)
        .collect())
}

/// Median time of every module inside the network (a module that runs twice counts twice).
fn in_network_blocks(
    arch: &UNetArch,
    s: &LatencySetting,
    repeats: Repeats,
) -> Result<Vec<BlockLatency>, EvalError> {
    let plan = arch.plan()?;
    let steps = step_medians(arch, s, repeats)?;
    let mut blocks: Vec<BlockLatency> = plan
        .modules
        .iter()
        .map(|m| BlockLatency {
            key: m.key.clone(),
            section: m.section,
            kind: m.kind.type_name(),
            ms: 0.0,
        })
        .collect();
    for (step, ms) in plan.steps.iter().zip(steps) {
        blocks[step.module].ms += ms;
    }
    Ok(blocks)
}
