//! The output stem: GroupNorm → SiLU → 3x3 convolution to the latent channels.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::{conv2d, group_norm_silu};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`ConvOut`].
#[derive(Config, Debug)]
pub struct ConvOutConfig {
    /// Input channels (the U-Net's base width).
    pub in_channels: usize,
    /// Latent channels out.
    pub out_channels: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// GroupNorm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub eps: f64,
}

impl ConvOutConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ConvOut<B> {
        ConvOut {
            conv_norm_out: GroupNormConfig::new(self.groups, self.in_channels)
                .with_epsilon(self.eps)
                .init(device),
            conv_out: Conv2dConfig::new([self.in_channels, self.out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
        }
    }
}

/// `conv_norm_out` + SiLU + `conv_out` (top-level weight keys in diffusers).
#[derive(Module, Debug)]
pub struct ConvOut<B: Backend> {
    /// Output normalisation.
    pub conv_norm_out: GroupNorm<B>,
    /// Output convolution.
    pub conv_out: Conv2d<B>,
}

impl<B: Backend> ConvOut<B> {
    /// - x: `[batch, in_channels, h, w]` → `[batch, out_channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv2d(&self.conv_out, group_norm_silu(&self.conv_norm_out, x))
    }
}

impl<B: Backend> LoadWeights<B> for ConvOut<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.conv_norm_out
            .load_weights(weights, &join(prefix, "conv_norm_out"), device)?;
        self.conv_out
            .load_weights(weights, &join(prefix, "conv_out"), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn base_width_to_latent_channels() {
        let device = Default::default();
        let m = ConvOutConfig::new(8, 4).with_groups(4).init::<Cpu>(&device);
        let x = Tensor::<Cpu, 4>::ones([2, 8, 6, 6], &device);
        assert_eq!(m.forward(x).dims(), [2, 4, 6, 6]);
    }
}
