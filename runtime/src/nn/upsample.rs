//! `Upsample2D`: nearest-neighbour 2x upsampling, then a 3x3 convolution (the U-Net's and the
//! VAE decoder's).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::upsample_conv2d;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of an [`Upsample2D`].
#[derive(Config, Debug)]
pub struct Upsample2DConfig {
    /// Channels in and out.
    pub channels: usize,
}

impl Upsample2DConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Upsample2D<B> {
        Upsample2D {
            conv: Conv2dConfig::new([self.channels, self.channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
        }
    }
}

/// diffusers' `Upsample2D` with `use_conv = true` (weight key `conv`).
#[derive(Module, Debug)]
pub struct Upsample2D<B: Backend> {
    /// The convolution after upsampling.
    pub conv: Conv2d<B>,
}

impl<B: Backend> Upsample2D<B> {
    /// - x: `[batch, c, h, w]` → `[batch, c, 2h, 2w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        upsample_conv2d(&self.conv, x)
    }
}

impl<B: Backend> LoadWeights<B> for Upsample2D<B> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn doubles_height_and_width() {
        let device = Default::default();
        let u = Upsample2DConfig::new(4).init::<Cpu>(&device);
        let x = Tensor::<Cpu, 4>::ones([2, 4, 3, 5], &device);
        assert_eq!(u.forward(x).dims(), [2, 4, 6, 10]);
    }
}
