//! `Downsample2D`: a 3x3 convolution with stride 2 and padding 1.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::conv2d;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`Downsample2D`].
#[derive(Config, Debug)]
pub struct Downsample2DConfig {
    /// Channels in and out.
    pub channels: usize,
}

impl Downsample2DConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Downsample2D<B> {
        Downsample2D {
            conv: Conv2dConfig::new([self.channels, self.channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
        }
    }
}

/// diffusers' `Downsample2D` with `use_conv = true` (weight key `conv`).
#[derive(Module, Debug)]
pub struct Downsample2D<B: Backend> {
    /// The strided convolution.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Downsample2D<B> {
    /// - x: `[batch, c, h, w]` → `[batch, c, ceil(h/2), ceil(w/2)]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        conv2d(&self.conv, x)
    }
}

impl<B: Backend> LoadWeights<B> for Downsample2D<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.conv
            .load_weights(weights, &join(prefix, "conv"), device)
    }
}
