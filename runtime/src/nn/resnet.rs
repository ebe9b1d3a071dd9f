//! `ResnetBlock2D`: two GroupNorm → SiLU → 3x3 conv layers, an optional time-embedding bias
//! between them and a residual connection — the U-Net's block with a time embedding, the
//! VAE's without (diffusers' `ResnetBlock2D` with `temb_channels=None`; candle's
//! `ResnetBlock2D` takes `temb_channels: Option<usize>` the same way).

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
    /// Time-embedding width; `None` for a block without one (the VAE's). Default: `None`.
    pub temb_channels: Option<usize>,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// GroupNorm epsilon. Default: 1e-6 (diffusers' default; SD's U-Net passes 1e-5).
    #[config(default = 1e-6)]
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
            time_emb_proj: self
                .temb_channels
                .map(|t| LinearConfig::new(t, self.out_channels).init(device)),
            norm2: norm(self.out_channels),
            conv2: conv3(self.out_channels, self.out_channels),
            conv_shortcut: (self.in_channels != self.out_channels).then(|| {
                Conv2dConfig::new([self.in_channels, self.out_channels], [1, 1]).init(device)
            }),
        }
    }
}

/// `n` ResNets without a time embedding, the first from `in_channels` to `out_channels`, the
/// others at `out_channels` — the stacks of the VAE's encoder and decoder blocks.
pub fn resnet_stack<B: Backend>(
    [in_channels, out_channels]: [usize; 2],
    n: usize,
    groups: usize,
    device: &B::Device,
) -> Vec<ResnetBlock2D<B>> {
    (0..n)
        .map(|i| {
            let cin = if i == 0 { in_channels } else { out_channels };
            ResnetBlock2DConfig::new(cin, out_channels)
                .with_groups(groups)
                .init(device)
        })
        .collect()
}

/// diffusers' `ResnetBlock2D` (default options: no up/down sampling, `output_scale_factor` 1,
/// time embedding added after `conv1`, 1x1 `conv_shortcut` when the channel count changes).
#[derive(Module, Debug)]
pub struct ResnetBlock2D<B: Backend> {
    /// Input normalisation.
    pub norm1: GroupNorm<B>,
    /// First 3x3 convolution.
    pub conv1: Conv2d<B>,
    /// Time embedding → per-channel bias (absent without a time embedding).
    pub time_emb_proj: Option<Linear<B>>,
    /// Second normalisation.
    pub norm2: GroupNorm<B>,
    /// Second 3x3 convolution.
    pub conv2: Conv2d<B>,
    /// 1x1 convolution on the residual when in ≠ out channels.
    pub conv_shortcut: Option<Conv2d<B>>,
}

impl<B: Backend> ResnetBlock2D<B> {
    /// - x: `[batch, in_channels, h, w]`
    /// - temb: `[batch, temb_channels]` (the time embedding, before SiLU), or `None` for a
    ///   block without a time embedding (a given `temb` is then ignored, and a block with one
    ///   given none adds no bias)
    /// - output: `[batch, out_channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>, temb: Option<Tensor<B, 2>>) -> Tensor<B, 4> {
        let h = group_norm_silu(&self.norm1, x.clone());
        // conv1(h) + time_emb_proj(silu(temb))[:, :, None, None], as one op.
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(temb)) => {
                conv2d_plus_channel(&self.conv1, h, proj.forward(silu(temb)))
            }
            _ => conv2d(&self.conv1, h),
        };
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
        if let Some(proj) = self.time_emb_proj.as_mut() {
            proj.load_weights(weights, &k("time_emb_proj"), device)?;
        }
        self.norm2.load_weights(weights, &k("norm2"), device)?;
        self.conv2.load_weights(weights, &k("conv2"), device)?;
        if let Some(conv) = self.conv_shortcut.as_mut() {
            conv.load_weights(weights, &k("conv_shortcut"), device)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn shapes_with_and_without_a_time_embedding() {
        let device = Default::default();
        let with = ResnetBlock2DConfig::new(8, 16)
            .with_temb_channels(Some(12))
            .with_groups(4)
            .init::<Cpu>(&device);
        assert!(with.time_emb_proj.is_some() && with.conv_shortcut.is_some());
        let x = Tensor::<Cpu, 4>::ones([2, 8, 6, 6], &device);
        let temb = Tensor::<Cpu, 2>::ones([2, 12], &device);
        assert_eq!(with.forward(x.clone(), Some(temb)).dims(), [2, 16, 6, 6]);
        let without = ResnetBlock2DConfig::new(8, 8)
            .with_groups(4)
            .init::<Cpu>(&device);
        assert!(without.time_emb_proj.is_none() && without.conv_shortcut.is_none());
        assert_eq!(without.forward(x, None).dims(), [2, 8, 6, 6]);
    }
}
