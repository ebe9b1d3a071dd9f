//! Roofline device profiles (`configs/devices/*.toml`) for GPUs one does not have: each kernel
//! takes `max(MACs / (peak matmul rate x efficiency), bytes / (bandwidth x efficiency))` plus a
//! launch overhead; a module's latency is the sum over its kernels.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unas_space::{CostQuery, Source, UNetArch};

use super::image::{images_per_call, ImageParts};
use super::ops::{module_ops, AttentionModel, Op};
use super::pipeline::{step_ops, text_encoder_ops, vae_decoder_ops, CLIP_L};
use super::{BlockLatency, Dtype, LatencyModel, LatencyReport, LatencySetting};
use crate::EvalError;

/// Peak rates from the vendor's datasheet (dense, no sparsity).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// Matrix-unit throughput per dtype in TFLOPS (2 FLOPs = 1 MAC): `f16`, `bf16`, `f32`.
    pub matmul_tflops: BTreeMap<String, f64>,
    /// DRAM bandwidth in GB/s.
    pub memory_gbps: f64,
}

/// Achieved fractions of the peaks, and fixed costs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Efficiency {
    /// Fraction of the peak matmul rate that convolutions, GEMMs and attention achieve.
    pub matmul: f64,
    /// Fraction of the peak bandwidth that memory-bound kernels achieve.
    pub memory: f64,
    /// Fixed cost per kernel in microseconds (launch, framework dispatch).
    pub launch_overhead_us: f64,
}

/// Attention kernels (see [`AttentionModel`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    /// One fused scaled-dot-product kernel (flash / memory-efficient attention).
    pub fused: bool,
    /// Head sizes fused kernels are compiled for (head dims are padded up to the next).
    #[serde(default)]
    pub head_dim_tiles: Vec<usize>,
}

/// Provenance of the efficiency figures.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Which fields were fitted (the rest are datasheet values or stated assumptions).
    #[serde(default)]
    pub fitted: Vec<String>,
    /// The measurement fitted to, and where it comes from.
    #[serde(default)]
    pub reference: String,
    /// The command that reproduces the fit.
    #[serde(default)]
    pub command: String,
    /// Checks against figures not used for fitting.
    #[serde(default)]
    pub held_out: String,
}

/// A device profile file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// Short name (`a10`).
    pub name: String,
    /// The card it models.
    pub device: String,
    /// The software stack whose behaviour the efficiencies describe.
    pub software: String,
    /// Datasheet peaks.
    pub rates: Rates,
    /// Achieved fractions and fixed costs.
    pub efficiency: Efficiency,
    /// Attention kernels.
    pub attention: AttentionConfig,
    /// Where the efficiency figures come from.
    #[serde(default)]
    pub calibration: Calibration,
}

impl DeviceProfile {
    /// Loads a profile from a file or a shipped name (`a10`, `a10g`, `h100`).
    pub fn load(spec: &str) -> Result<Self, EvalError> {
        let src = unas_space::presets::resolve(spec, DEVICE_PRESETS)?;
        Self::from_source(&src)
    }

    /// Parses and checks a profile.
    pub fn from_source(src: &Source) -> Result<Self, EvalError> {
        let p: DeviceProfile = src.parse()?;
        let bad = |field: &str, msg: &str| Err(EvalError::Config(src.invalid_at(field, msg)));
        if p.rates.memory_gbps.is_nan() || p.rates.memory_gbps <= 0.0 {
            return bad("rates.memory_gbps", "must be positive");
        }
        for (k, v) in &p.rates.matmul_tflops {
            if k.parse::<Dtype>().is_err() {
                return bad("rates.matmul_tflops", "keys are f16, bf16 or f32");
            }
            if v.is_nan() || *v <= 0.0 {
                return bad("rates.matmul_tflops", "rates must be positive");
            }
        }
        let e = &p.efficiency;
        if !(e.matmul > 0.0 && e.matmul <= 1.0) {
            return bad("efficiency.matmul", "must be in (0, 1]");
        }
        if !(e.memory > 0.0 && e.memory <= 1.0) {
            return bad("efficiency.memory", "must be in (0, 1]");
        }
        if e.launch_overhead_us.is_nan() || e.launch_overhead_us < 0.0 {
            return bad("efficiency.launch_overhead_us", "must be >= 0");
        }
        Ok(p)
    }

    /// Writes the profile as TOML (used by calibration).
    pub fn save(&self, path: &Path) -> Result<(), EvalError> {
        let text = toml::to_string(self).map_err(|e| EvalError::File {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|e| EvalError::File {
            file: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn attention_model(&self) -> AttentionModel {
        AttentionModel {
            fused: self.attention.fused,
            head_dim_tiles: self.attention.head_dim_tiles.clone(),
        }
    }

    fn macs_per_s(&self, dtype: Dtype) -> Result<f64, EvalError> {
        self.rates
            .matmul_tflops
            .get(dtype.name())
            .map(|t| t * 1e12 / 2.0 * self.efficiency.matmul)
            .ok_or_else(|| {
                EvalError::Unsupported(format!(
                    "profile {} has no matmul rate for {}",
                    self.name,
                    dtype.name()
                ))
            })
    }

    /// Seconds for a list of kernels.
    pub fn ops_seconds(&self, ops: &[Op], dtype: Dtype) -> Result<f64, EvalError> {
        let macs_per_s = self.macs_per_s(dtype)?;
        let bytes_per_s = self.rates.memory_gbps * 1e9 * self.efficiency.memory;
        let launch = self.efficiency.launch_overhead_us * 1e-6;
        Ok(ops
            .iter()
            .map(|op| {
                let compute = if op.tensor {
                    op.macs as f64 / macs_per_s
                } else {
                    0.0
                };
                compute.max(op.bytes as f64 / bytes_per_s) + launch
            })
            .sum())
    }

    /// Seconds per image of a whole text-to-image pipeline: text encoding (prompt and negative
    /// prompt), `steps` U-Net steps with guidance, and the VAE decode.
    pub fn pipeline_seconds(
        &self,
        arch: &UNetArch,
        setting: &LatencySetting,
        steps: usize,
    ) -> Result<f64, EvalError> {
        let unet = self.predict(arch, setting)?.total_ms;
        Ok(self.parts(setting)?.per_image_ms(unet, steps) / 1e3)
    }

    /// The kernels around the U-Net steps: the CLIP ViT-L/14 text encoder at 77 tokens for the
    /// batch, SD's VAE decoder for the images, and the scheduler's per-step arithmetic.
    fn parts(&self, setting: &LatencySetting) -> Result<ImageParts, EvalError> {
        let e = setting.dtype.bytes();
        let att = self.attention_model();
        let images = images_per_call(setting.batch);
        let text = text_encoder_ops(&CLIP_L, setting.batch as u64, 77, e, &att);
        let vae = vae_decoder_ops(images as u64, setting.latent as u64, e, &att);
        let step = step_ops(setting.batch as u64, setting.latent as u64, e, &att);
        Ok(ImageParts {
            fixed_ms: 1e3
                * (self.ops_seconds(&text, setting.dtype)?
                    + self.ops_seconds(&vae, setting.dtype)?),
            step_extra_ms: 1e3 * self.ops_seconds(&step, setting.dtype)?,
            images,
            source: format!(
                "profile:{} kernels of the CLIP ViT-L/14 text encoder, SD's VAE decoder and the \
                 scheduler step",
                self.name
            ),
        })
    }
}

/// Shipped device profiles: (name, TOML).
pub const DEVICE_PRESETS: &[(&str, &str)] = &[
    ("a10", include_str!("../../../configs/devices/a10.toml")),
    ("a10g", include_str!("../../../configs/devices/a10g.toml")),
    ("h100", include_str!("../../../configs/devices/h100.toml")),
];

impl LatencyModel for DeviceProfile {
    fn describe(&self) -> String {
        format!("profile:{} ({}; {})", self.name, self.device, self.software)
    }

    fn image_parts(&self, setting: &LatencySetting) -> Result<Option<ImageParts>, EvalError> {
        self.parts(setting).map(Some)
    }

    fn predict(
        &self,
        arch: &UNetArch,
        setting: &LatencySetting,
    ) -> Result<LatencyReport, EvalError> {
        let plan = arch.plan()?;
        let q = CostQuery {
            height: setting.latent,
            width: setting.latent,
            batch: setting.batch,
            text_len: setting.text_len,
        };
        // Validates the latent against the downsampling factor.
        plan.cost(&q)?;
        let att = self.attention_model();
        let e = setting.dtype.bytes();
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
        for step in &plan.steps {
            let m = &plan.modules[step.module];
            let h = (setting.latent / step.input_div) as u64;
            let mut ops = module_ops(&m.kind, h, h, &q, e, &att);
            if step.pop_skip.is_some() {
                // torch.cat of the hidden state and the skip (read once, written once).
                let (cin, _) = m.kind.channels();
                let elems = q.batch as u64 * h * h * cin as u64;
                ops.push(Op {
                    name: "cat",
                    macs: 0,
                    bytes: 2 * elems * e,
                    tensor: false,
                });
            }
            blocks[step.module].ms += self.ops_seconds(&ops, setting.dtype)? * 1e3;
        }
        let total_ms = blocks.iter().map(|b| b.ms).sum();
        Ok(LatencyReport {
            total_ms,
            blocks,
            overhead_ms: 0.0,
            iqr_ms: None,
            source: format!("profile:{}", self.name),
        })
    }
}
