//! `ResnetBlock2D`: two GroupNorm → SiLU → 3x3 conv layers with a time-embedding bias between
//! them and a residual connection.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::{conv2d, conv2d_plus, conv2d_plus_channel, group_norm_silu};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`ResnetBlock2D`].
#[derive(Config, Debug)]
pub struct ResnetBlock2DConfig {
    /// Input channels (including a concatenated skip connection).
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Time-embedding width.
    pub temb_channels: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// GroupNorm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub eps: f64,
}

impl ResnetBlock2DConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResnetBlock2D<B> {
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
        ResnetBlock2D {
            norm1: norm(self.in_channels),
            conv1: conv3(self.in_channels, self.out_channels),
            time_emb_proj: LinearConfig::new(self.temb_channels, self.out_channels).init(device),
            norm2: norm(self.out_channels),
            conv2: conv3(self.out_channels, self.out_channels),
            conv_shortcut: (self.in_channels != self.out_channels).then(|| {
                Conv2dConfig::new([self.in_channels, self.out_channels], [1, 1]).init(device)
            }),
        }
    }
}

/// diffusers' `ResnetBlock2D` (default options: no up/down sampling, `output_scale_factor` 1,
/// time embedding added after `conv1`, 1x1 `conv_shortcut` when the channel count changes).
#[derive(Module, Debug)]
pub struct ResnetBlock2D<B: Backend> {
    /// Input normalisation.
    pub norm1: GroupNorm<B>,
    /// First 3x3 convolution.
    pub conv1: Conv2d<B>,
    /// Time embedding → per-channel bias.
    pub time_emb_proj: Linear<B>,
    /// Second normalisation.
    pub norm2: GroupNorm<B>,
    /// Second 3x3 convolution.
    pub conv2: Conv2d<B>,
    /// 1x1 convolution on the residual when in ≠ out channels.
    pub conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResnetBlock2D<B> {
    /// - x: `[batch, in_channels, h, w]`
    /// - temb: `[batch, temb_channels]` (the time embedding, before SiLU)
    /// - output: `[batch, out_channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>, temb: Tensor<B, 2>) -> Tensor<B, 4> {
        // conv1(h) + time_emb_proj(silu(temb))[:, :, None, None], as one op.
        let t = self.time_emb_proj.forward(silu(temb));
        let h = conv2d_plus_channel(&self.conv1, group_norm_silu(&self.norm1, x.clone()), t);
        let residual = match &self.conv_shortcut {
            Some(conv) => conv2d(conv, x),
            None => x,
        };
        // residual + conv2(h), as one op.
        conv2d_plus(&self.conv2, group_norm_silu(&self.norm2, h), residual)
    }
}

impl<B: Backend> LoadWeights<B> for ResnetBlock2D<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.norm1.load_weights(weights, &k("norm1"), device)?;
        self.conv1.load_weights(weights, &k("conv1"), device)?;
        self.time_emb_proj
            .load_weights(weights, &k("time_emb_proj"), device)?;
        self.norm2.load_weights(weights, &k("norm2"), device)?;
        self.conv2.load_weights(weights, &k("conv2"), device)?;
        if let Some(conv) = self.conv_shortcut.as_mut() {
            conv.load_weights(weights, &k("conv_shortcut"), device)?;
        }
        Ok(())
    }
}
