//! `ClipMlp`: CLIP's feed-forward block, fc1 → activation → fc2.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{gelu, sigmoid};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::weights::{join, LoadWeights, Weights};

/// The activations CLIP text towers use (transformers' `hidden_act`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ClipActivation {
    /// `x·σ(1.702x)` (OpenAI CLIP, SD 1.x).
    #[default]
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact (erf) GELU (OpenCLIP, SD 2.x).
    #[serde(rename = "gelu")]
    Gelu,
}

impl ClipActivation {
    /// Applies the activation elementwise.
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::QuickGelu => x.clone() * sigmoid(x.mul_scalar(1.702)),
            Self::Gelu => gelu(x),
        }
    }
}

/// Configuration of a [`ClipMlp`].
#[derive(Config, Debug)]
pub struct ClipMlpConfig {
    /// Model width.
    pub hidden_size: usize,
    /// Inner width.
    pub intermediate_size: usize,
    /// Activation. Default: quick_gelu.
    #[config(default = "ClipActivation::QuickGelu")]
    pub activation: ClipActivation,
}

impl ClipMlpConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipMlp<B> {
        ClipMlp {
            fc1: LinearConfig::new(self.hidden_size, self.intermediate_size).init(device),
            fc2: LinearConfig::new(self.intermediate_size, self.hidden_size).init(device),
            activation: self.activation,
        }
    }
}

/// transformers' `CLIPMLP` (`fc1`, `fc2`).
#[derive(Module, Debug)]
pub struct ClipMlp<B: Backend> {
    /// Up projection.
    pub fc1: Linear<B>,
    /// Down projection.
    pub fc2: Linear<B>,
    #[module(skip)]
    activation: ClipActivation,
}

impl<B: Backend> ClipMlp<B> {
    /// - x: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(self.activation.apply(self.fc1.forward(x)))
    }
}

impl<B: Backend> LoadWeights<B> for ClipMlp<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.fc1
            .load_weights(weights, &join(prefix, "fc1"), device)?;
        self.fc2.load_weights(weights, &join(prefix, "fc2"), device)
    }
}
