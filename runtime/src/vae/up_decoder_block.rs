//! `UpDecoderBlock2D`: ResNets, then an optional upsampler (AutoencoderKL decoder).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::nn::resnet::resnet_stack;
use crate::nn::{ResnetBlock2D, Upsample2D, Upsample2DConfig};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of an [`UpDecoderBlock2D`].
#[derive(Config, Debug)]
pub struct UpDecoderBlock2DConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// ResNets (`layers_per_block + 1`).
    pub num_layers: usize,
    /// Double the resolution at the end.
    pub add_upsample: bool,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
}

impl UpDecoderBlock2DConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> UpDecoderBlock2D<B> {
        UpDecoderBlock2D {
            resnets: resnet_stack(
                [self.in_channels, self.out_channels],
                self.num_layers,
                self.groups,
                device,
            ),
            upsampler: self
                .add_upsample
                .then(|| Upsample2DConfig::new(self.out_channels).init(device)),
        }
    }
}

/// Keys `resnets.{i}`, `upsamplers.0`.
#[derive(Module, Debug)]
pub struct UpDecoderBlock2D<B: Backend> {
    /// The ResNets.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// The upsampler (nearest 2x + 3x3 conv), if any.
    pub upsampler: Option<Upsample2D<B>>,
}

impl<B: Backend> UpDecoderBlock2D<B> {
    /// - x: `[batch, in, h, w]` → `[batch, out, h, w]` (or `[…, 2h, 2w]` with an upsampler)
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = x;
        for r in &self.resnets {
            h = r.forward(h, None);
        }
        match &self.upsampler {
            Some(u) => u.forward(h),
            None => h,
        }
    }
}

impl<B: Backend> LoadWeights<B> for UpDecoderBlock2D<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.resnets
            .load_weights(weights, &join(prefix, "resnets"), device)?;
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
    fn narrows_then_doubles() {
        let device = Default::default();
        let m = UpDecoderBlock2DConfig::new(8, 4, 2, true)
            .with_groups(4)
            .init::<Cpu>(&device);
        let x = Tensor::<Cpu, 4>::ones([1, 8, 4, 4], &device);
        assert_eq!(m.forward(x).dims(), [1, 4, 8, 8]);
    }
}
