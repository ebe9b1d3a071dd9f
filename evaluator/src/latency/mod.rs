//! Latency of one denoising step of a candidate U-Net, by one of three models:
//! [`measured::MeasuredModel`] (timed on the device at hand), [`lut::LookupTable`] (sum of
//! per-block measurements plus a fitted overhead) and [`profile::DeviceProfile`] (a roofline
//! profile of a GPU one does not have).

pub mod auto;
pub mod calibrate;
pub mod image;
pub mod lut;
pub mod lut_build;
pub mod measured;
pub mod ops;
pub mod pipeline;
pub mod profile;
pub mod robust;

use serde::{Deserialize, Serialize};
use unas_space::{Section, UNetArch};

use crate::EvalError;

/// Element type of weights and activations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// single precision.
    F32,
}

impl Dtype {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::F32 => 4,
        }
    }

    /// Lower-case name (`f16`).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F16 => "f16",
            Dtype::Bf16 => "bf16",
            Dtype::F32 => "f32",
        }
    }
}

impl std::str::FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" | "fp16" => Ok(Dtype::F16),
            "bf16" => Ok(Dtype::Bf16),
            "f32" | "fp32" => Ok(Dtype::F32),
            _ => Err(format!("unknown dtype `{s}` (f16, bf16, f32)")),
        }
    }
}

/// What one denoising step is timed for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LatencySetting {
    /// Latent side (64 for 512 px).
    pub latent: usize,
    /// U-Net batch (2 = one image with classifier-free guidance).
    pub batch: usize,
    /// Text tokens (77 for CLIP).
    pub text_len: usize,
    /// Element type.
    pub dtype: Dtype,
}

impl Default for LatencySetting {
    /// One guided 512 px step in f16: latent 64, batch 2, 77 tokens.
    fn default() -> Self {
        Self {
            latent: 64,
            batch: 2,
            text_len: 77,
            dtype: Dtype::F16,
        }
    }
}

/// Latency of one module (all its runs in one forward).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockLatency {
    /// Weight-key prefix of the module (`down_blocks.1.attentions.0`; empty for conv_out).
    pub key: String,
    /// Where it sits.
    pub section: Section,
    /// Module type (`resnet`, `attention`, ...).
    pub kind: &'static str,
    /// Milliseconds.
    pub ms: f64,
}

/// A latency estimate or measurement of one U-Net forward (one denoising step).
#[derive(Clone, Debug, PartialEq)]
pub struct LatencyReport {
    /// Milliseconds per step: sum of blocks plus overhead.
    pub total_ms: f64,
    /// Per module (empty for end-to-end measurements without a breakdown).
    pub blocks: Vec<BlockLatency>,
    /// Part of the total not attributed to a block (fitted overhead, launch gaps).
    pub overhead_ms: f64,
    /// Interquartile range of repeated measurements, when measured.
    pub iqr_ms: Option<f64>,
    /// Which model produced it (`profile:a10`, `lut:cpu`, `measured:cpu`).
    pub source: String,
}

/// A way to obtain the latency of one denoising step of an architecture.
pub trait LatencyModel {
    /// Short description (`profile:a10 (NVIDIA A10 …)`).
    fn describe(&self) -> String;
    /// Latency of one U-Net forward of `arch` at `setting`.
    fn predict(
        &self,
        arch: &UNetArch,
        setting: &LatencySetting,
    ) -> Result<LatencyReport, EvalError>;
    /// The pipeline's parts around the U-Net steps at `setting` (text encoder, VAE decode,
    /// scheduler), when the model prices them; `None` (the default) when it does not (a
    /// table or measurement of U-Net steps alone).
    fn image_parts(
        &self,
        setting: &LatencySetting,
    ) -> Result<Option<image::ImageParts>, EvalError> {
        let _ = setting;
        Ok(None)
    }
}
