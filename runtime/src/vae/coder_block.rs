//! `CoderBlock2D`: the AutoencoderKL's encoder and decoder block — ResNets, then an optional
//! downsampler (diffusers' `DownEncoderBlock2D`) or upsampler (`UpDecoderBlock2D`). diffusers
//! writes the two classes out separately; they differ only in the resampler, so here they are
//! one block with an optional one of each (the field names are those the burn records of
//! either class hold, so records written before the merge load unchanged).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::nn::resnet::resnet_stack;
use crate::nn::{Downsample2D, Downsample2DConfig, ResnetBlock2D, Upsample2D, Upsample2DConfig};
use crate::weights::{join, LoadWeights, Weights};

/// What a block does to the resolution at its end.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Resample {
    /// Nothing (the last encoder block, the last decoder block).
    Keep,
    /// Halve it (an encoder block: diffusers' `Downsample2D(padding=0)`).
    Down,
    /// Double it (a decoder block: nearest 2x + 3x3 conv).
    Up,
}

/// Configuration of a [`CoderBlock2D`].
#[derive(Config, Debug)]
pub struct CoderBlock2DConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// ResNets (`layers_per_block` in the encoder, `layers_per_block + 1` in the decoder).
    pub num_layers: usize,
    /// The resampler at the end.
    pub resample: Resample,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
}

impl CoderBlock2DConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> CoderBlock2D<B> {
        let c = self.out_channels;
        CoderBlock2D {
            resnets: resnet_stack([self.in_channels, c], self.num_layers, self.groups, device),
            downsampler: (self.resample == Resample::Down)
                .then(|| Downsample2DConfig::new(c).with_padding(0).init(device)),
            upsampler: (self.resample == Resample::Up)
                .then(|| Upsample2DConfig::new(c).init(device)),
        }
    }
}

/// Keys `resnets.{i}`, then `downsamplers.0` or `upsamplers.0`.
#[derive(Module, Debug)]
pub struct CoderBlock2D<B: Backend> {
    /// The ResNets.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// The encoder block's downsampler, if any.
    pub downsampler: Option<Downsample2D<B>>,
    /// The decoder block's upsampler, if any.
    pub upsampler: Option<Upsample2D<B>>,
}

impl<B: Backend> CoderBlock2D<B> {
    /// - x: `[batch, in, h, w]` → `[batch, out, h, w]`, `[…, h/2, w/2]` after a downsampler,
    ///   `[…, 2h, 2w]` after an upsampler
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = x;
        for r in &self.resnets {
            h = r.forward(h, None);
        }
        if let Some(d) = &self.downsampler {
            h = d.forward(h);
        }
        match &self.upsampler {
            Some(u) => u.forward(h),
            None => h,
        }
    }
}

impl<B: Backend> LoadWeights<B> for CoderBlock2D<B> {
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
        if let Some(u) = self.upsampler.as_mut() {
            u.load_weights(weights, &join(prefix, "upsamplers.0"), device)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn widens_then_halves_or_narrows_then_doubles() {
        let device = Default::default();
        let cases = [
            (4, 8, Resample::Down, [1, 8, 4, 4]),
            (8, 4, Resample::Up, [1, 4, 16, 16]),
            (8, 8, Resample::Keep, [1, 8, 8, 8]),
        ];
        for (cin, cout, resample, out) in cases {
            let m = CoderBlock2DConfig::new(cin, cout, 2, resample)
                .with_groups(4)
                .init::<Cpu>(&device);
            let x = Tensor::<Cpu, 4>::ones([1, cin, 8, 8], &device);
            assert_eq!(m.forward(x).dims(), out, "{resample:?}");
        }
    }
}
