//! `VaeResnetBlock2D`: diffusers' `ResnetBlock2D` without a time embedding, as the
//! AutoencoderKL uses it (GroupNorm eps 1e-6).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::group_norm_silu;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`VaeResnetBlock2D`].
#[derive(Config, Debug)]
pub struct VaeResnetBlock2DConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// GroupNorm epsilon. Default: 1e-6.
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl VaeResnetBlock2DConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VaeResnetBlock2D<B> {
        let conv3 = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let norm = |c: usize| {
            GroupNormConfig::new(self.groups, c)
                .with_epsilon(self.eps)
                .init(device)
        };
        VaeResnetBlock2D {
            norm1: norm(self.in_channels),
            conv1: conv3(self.in_channels, self.out_channels),
            norm2: norm(self.out_channels),
            conv2: conv3(self.out_channels, self.out_channels),
            conv_shortcut: (self.in_channels != self.out_channels).then(|| {
                Conv2dConfig::new([self.in_channels, self.out_channels], [1, 1]).init(device)
            }),
        }
    }
}

/// Two GroupNorm → SiLU → 3x3 conv layers and a residual (1x1 `conv_shortcut` when the
/// channel count changes).
#[derive(Module, Debug)]
pub struct VaeResnetBlock2D<B: Backend> {
    /// Input normalisation.
    pub norm1: GroupNorm<B>,
    /// First convolution.
    pub conv1: Conv2d<B>,
    /// Second normalisation.
    pub norm2: GroupNorm<B>,
    /// Second convolution.
    pub conv2: Conv2d<B>,
    /// Residual projection when in ≠ out channels.
    pub conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> VaeResnetBlock2D<B> {
    /// - x: `[batch, in_channels, h, w]` → `[batch, out_channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let h = self.conv1.forward(group_norm_silu(&self.norm1, x.clone()));
        let h = self.conv2.forward(group_norm_silu(&self.norm2, h));
        let residual = match &self.conv_shortcut {
            Some(conv) => conv.forward(x),
            None => x,
        };
        residual + h
    }
}

impl<B: Backend> LoadWeights<B> for VaeResnetBlock2D<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.norm1.load_weights(weights, &k("norm1"), device)?;
        self.conv1.load_weights(weights, &k("conv1"), device)?;
        self.norm2.load_weights(weights, &k("norm2"), device)?;
        self.conv2.load_weights(weights, &k("conv2"), device)?;
        if let Some(conv) = self.conv_shortcut.as_mut() {
            conv.load_weights(weights, &k("conv_shortcut"), device)?;
        }
        Ok(())
    }
}
