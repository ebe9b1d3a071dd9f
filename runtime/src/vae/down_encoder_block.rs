//! `DownEncoderBlock2D`: ResNets, then an optional downsampler (AutoencoderKL encoder).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::nn::resnet::resnet_stack;
use crate::nn::{Downsample2D, Downsample2DConfig, ResnetBlock2D};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`DownEncoderBlock2D`].
#[derive(Config, Debug)]
pub struct DownEncoderBlock2DConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// ResNets (`layers_per_block`).
    pub num_layers: usize,
    /// Halve the resolution at the end.
    pub add_downsample: bool,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
}

impl DownEncoderBlock2DConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DownEncoderBlock2D<B> {
        DownEncoderBlock2D {
            resnets: resnet_stack(
                [self.in_channels, self.out_channels],
                self.num_layers,
                self.groups,
                device,
            ),
            downsampler: self.add_downsample.then(|| {
                // diffusers' `Downsample2D(padding=0)`: right and bottom padding only.
                Downsample2DConfig::new(self.out_channels)
                    .with_padding(0)
                    .init(device)
            }),
        }
    }
}

/// Keys `resnets.{i}`, `downsamplers.0`.
#[derive(Module, Debug)]
pub struct DownEncoderBlock2D<B: Backend> {
    /// The ResNets.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// The downsampler, if any.
    pub downsampler: Option<Downsample2D<B>>,
}

impl<B: Backend> DownEncoderBlock2D<B> {
    /// - x: `[batch, in, h, w]` → `[batch, out, h, w]` (or `[…, h/2, w/2]` with a downsampler)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = x;
        for r in &self.resnets {
            h = r.forward(h, None);
        }
        match &self.downsampler {
            Some(d) => d.forward(h),
            None => h,
        }
    }
}

impl<B: Backend> LoadWeights<B> for DownEncoderBlock2D<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.resnets
            .load_weights(weights, &join(prefix, "resnets"), device)?;
        if let Some(d) = self.downsampler.as_mut() {
            d.load_weights(weights, &join(prefix, "downsamplers.0"), device)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn widens_then_halves() {
        let device = Default::default();
        let m = DownEncoderBlock2DConfig::new(4, 8, 2, true)
            .with_groups(4)
            .init::<Cpu>(&device);
        let x = Tensor::<Cpu, 4>::ones([1, 4, 8, 8], &device);
        assert_eq!(m.forward(x).dims(), [1, 8, 4, 4]);
    }
}
