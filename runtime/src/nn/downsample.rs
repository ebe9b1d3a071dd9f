//! `Downsample2D`: a 3x3 convolution with stride 2, padded by one on every side (the U-Net's)
//! or, with `padding = 0`, zero-padded by one on the right and bottom only (the VAE
//! encoder's: diffusers' `Downsample2D(padding=0)` runs `F.pad(x, (0, 1, 0, 1))` first).

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
    /// diffusers' `padding`: 1 pads every side by one; 0 pads the right and bottom by one.
    /// Default: 1.
    #[config(default = 1)]
    pub padding: usize,
}

impl Downsample2DConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Downsample2D<B> {
        // (top, left, bottom, right).
        let padding = match self.padding {
            0 => PaddingConfig2d::Explicit(0, 0, 1, 1),
            p => PaddingConfig2d::Explicit(p, p, p, p),
        };
        Downsample2D {
            conv: Conv2dConfig::new([self.channels, self.channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(padding)
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
    /// - x: `[batch, c, h, w]` → `[batch, c, ⌈h/2⌉, ⌈w/2⌉]` (even h, w: `h/2`, `w/2`)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn both_paddings_halve_even_sizes() {
        let device = Default::default();
        let x = Tensor::<Cpu, 4>::ones([1, 4, 8, 6], &device);
        for padding in [0, 1] {
            let d = Downsample2DConfig::new(4)
                .with_padding(padding)
                .init::<Cpu>(&device);
            assert_eq!(
                d.forward(x.clone()).dims(),
                [1, 4, 4, 3],
                "padding {padding}"
            );
        }
    }

    #[test]
    fn padding_zero_pads_only_the_right_and_bottom() {
        // A kernel that reads only its top-left tap: output (i, j) = input (2i − top, 2j −
        // left), so with no top/left padding it is the input at (2i, 2j).
        let device = Default::default();
        let mut d = Downsample2DConfig::new(1)
            .with_padding(0)
            .init::<Cpu>(&device);
        let mut w = vec![0f32; 9];
        w[0] = 1.0;
        d.conv.weight =
            burn::module::Param::from_data(burn::tensor::TensorData::new(w, [1, 1, 3, 3]), &device);
        d.conv.bias = None;
        let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let x =
            Tensor::<Cpu, 4>::from_data(burn::tensor::TensorData::new(x, [1, 1, 4, 4]), &device);
        let y: Vec<f32> = d.forward(x).into_data().to_vec().unwrap();
        assert_eq!(y, vec![0.0, 2.0, 8.0, 10.0]);
    }
}
