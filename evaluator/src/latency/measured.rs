//! Measured latency on the device at hand: the candidate U-Net with random weights, one
//! denoising step timed after warm-up runs, each run ending with a device synchronisation;
//! median and IQR of the repeats. Also times every step inside the network, for per-block
//! breakdowns and lookup tables.

use std::time::Instant;

use burn::tensor::backend::Backend;
use unas_runtime::bench::{BenchConfig, Timing};
use unas_runtime::device::{Cpu, Device};
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

/// The measured latency model. The total is the median (or lower quartile) of the end-to-end
/// forward times; with
/// `breakdown`, a second series of passes synchronises after every module to attribute time to
/// blocks (those passes are slower and are not part of the total).
#[derive(Clone, Debug)]
pub struct MeasuredModel {
    /// Where to run.
    pub device: Device,
    /// Warm-up and repeats.
    pub repeats: Repeats,
    /// Also time every module inside the network.
    pub breakdown: bool,
    /// The total reported: the median of the repeats, or their lower quartile (the robust
    /// protocol of lookup tables and their validation, [`super::robust`]).
    pub statistic: super::robust::Statistic,
}

fn check_dtype(device: Device, dtype: Dtype) -> Result<(), EvalError> {
    if dtype != Dtype::F32 {
        return Err(EvalError::Unsupported(format!(
            "measuring on {device} supports f32 only (got {}); f16 is slower than f32 on burn's \
             CPU backend (f16 and bf16 are measured on CUDA devices)",
            dtype.name()
        )));
    }
    Ok(())
}

/// Work run on the backend of one device and float type (see [`on_device`]).
pub(crate) trait OnBackend {
    /// The result.
    type Out;
    /// Runs on backend `B`'s `device`.
    fn run<B: Backend>(self, device: &B::Device) -> Result<Self::Out, EvalError>;
}

/// Runs `job` on `device` with floats of `dtype`: burn's CPU backend (f32), or with the `cuda`
/// feature a CUDA device in f32, f16 or bf16. The device is probed first, so a missing CUDA
/// driver is an error naming it, not a panic.
pub(crate) fn on_device<T: OnBackend>(
    device: Device,
    dtype: Dtype,
    job: T,
) -> Result<T::Out, EvalError> {
    device.check()?;
    match device {
        Device::Cpu => {
            check_dtype(device, dtype)?;
            job.run::<Cpu>(&Default::default())
        }
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => {
            use burn::backend::cuda::CudaDevice;
            use burn::backend::Cuda;
            use burn::tensor::{bf16, f16};
            let d = CudaDevice::new(i);
            match dtype {
                Dtype::F32 => job.run::<Cuda<f32>>(&d),
                Dtype::F16 => job.run::<Cuda<f16>>(&d),
                Dtype::Bf16 => job.run::<Cuda<bf16>>(&d),
            }
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
    }
}

/// End-to-end forward times of one architecture (warm-up runs untimed, the device synchronised
/// before every clock read).
struct ForwardTimes<'a> {
    arch: &'a UNetArch,
    setting: &'a LatencySetting,
    repeats: Repeats,
}

impl OnBackend for ForwardTimes<'_> {
    type Out = Timing;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Timing, EvalError> {
        let s = self.setting;
        let cfg = BenchConfig {
            latent: s.latent,
            batch: s.batch,
            text_len: s.text_len,
            warmup: self.repeats.warmup,
            repeats: self.repeats.repeats,
        };
        let report = unas_runtime::bench::bench_unet::<B>(self.arch, &cfg, device, &mut |_| {})
            .map_err(|e| EvalError::Measure(e.to_string()))?;
        Ok(report.forward)
    }
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
        let job = ForwardTimes {
            arch,
            setting,
            repeats: self.repeats,
        };
        let forward = on_device(self.device, setting.dtype, job)?;
        let blocks = if self.breakdown {
            in_network_blocks(arch, setting, self.repeats, self.device)?
        } else {
            Vec::new()
        };
        Ok(LatencyReport {
            total_ms: self.statistic.of(&forward),
            blocks,
            overhead_ms: 0.0,
            iqr_ms: Some(forward.iqr_ms()),
            source: format!("measured:{}", self.device),
        })
    }
}

/// Median time of every plan step of `arch` inside the network on `device` (at the setting's
/// dtype): passes that synchronise before and after each step, so each step's time is its own;
/// warm-up passes first.
pub fn step_medians(
    arch: &UNetArch,
    s: &LatencySetting,
    repeats: Repeats,
    device: Device,
) -> Result<Vec<f64>, EvalError> {
    on_device(device, s.dtype, StepMedians { arch, s, repeats })
}

/// [`step_medians`] as a job.
struct StepMedians<'a> {
    arch: &'a UNetArch,
    s: &'a LatencySetting,
    repeats: Repeats,
}

impl OnBackend for StepMedians<'_> {
    type Out = Vec<f64>;
    fn run<B: Backend>(self, device: &B::Device) -> Result<Vec<f64>, EvalError> {
        step_medians_on::<B>(self.arch, self.s, self.repeats, device)
    }
}

fn step_medians_on<B: Backend>(
    arch: &UNetArch,
    s: &LatencySetting,
    repeats: Repeats,
    device: &B::Device,
) -> Result<Vec<f64>, EvalError> {
    let plan = arch.plan()?;
    let p = super::robust::prepare::<B>(arch, s, device)?;
    let (model, (sample, timesteps, context)) = (p.model, p.inputs);
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
    device: Device,
) -> Result<Vec<BlockLatency>, EvalError> {
    let plan = arch.plan()?;
    let steps = step_medians(arch, s, repeats, device)?;
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
