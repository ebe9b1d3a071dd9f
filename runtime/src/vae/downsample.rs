//! `VaeDownsample2D`: zero-pad right and bottom by one, then a 3x3 stride-2 convolution
//! (diffusers' `Downsample2D` with `padding=0`, as the AutoencoderKL encoder uses it).

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::PaddingConfig2d;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`VaeDownsample2D`].
#[derive(Config, Debug)]
pub struct VaeDownsample2DConfig {
    /// Channels in and out.
    pub channels: usize,
}

impl VaeDownsample2DConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VaeDownsample2D<B> {
        VaeDownsample2D {
            conv: Conv2dConfig::new([self.channels, self.channels], [3, 3])
                .with_stride([2, 2])
                // (top, left, bottom, right): torch's F.pad(x, (0, 1, 0, 1)).
                .with_padding(PaddingConfig2d::Explicit(0, 0, 1, 1))
                .init(device),
        }
    }
}

/// Weight key `conv`.
#[derive(Module, Debug)]
pub struct VaeDownsample2D<B: Backend> {
    /// The strided convolution.
    pub conv: Conv2d<B>,
}

impl<B: Backend> VaeDownsample2D<B> {
    /// - x: `[batch, c, h, w]` → `[batch, c, ⌈h/2⌉, ⌈w/2⌉]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.conv.forward(x)
    }
}

impl<B: Backend> LoadWeights<B> for VaeDownsample2D<B> {
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
