//! `UNetMidBlock2D`: ResNet, optional self-attention, ResNet (diffusers' `UNetMidBlock2D` as the
//! AutoencoderKL uses it).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::nn::attention::{DIFFUSERS_NAMES, LEGACY_VAE_NAMES};
use crate::nn::{Attention, AttentionConfig, ResnetBlock2D, ResnetBlock2DConfig};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`UNetMidBlock2D`].
#[derive(Config, Debug)]
pub struct UNetMidBlock2DConfig {
    /// Channels.
    pub channels: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// With the attention between the ResNets (`mid_block_add_attention`). Default: true.
    #[config(default = true)]
    pub add_attention: bool,
}

impl UNetMidBlock2DConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> UNetMidBlock2D<B> {
        let c = self.channels;
        let resnet = || {
            ResnetBlock2DConfig::new(c, c)
                .with_groups(self.groups)
                .init(device)
        };
        UNetMidBlock2D {
            resnets: vec![resnet(), resnet()],
            attention: self.add_attention.then(|| {
                // AutoencoderKL: one head of all channels, q/k/v with bias, GroupNorm in front,
                // residual connection.
                AttentionConfig::new(c, c, 1)
                    .with_bias(true)
                    .with_norm_num_groups(Some(self.groups))
                    .init(device)
            }),
        }
    }
}

/// Keys `resnets.{0,1}`, `attentions.0`.
#[derive(Module, Debug)]
pub struct UNetMidBlock2D<B: Backend> {
    /// The two ResNets.
    pub resnets: Vec<ResnetBlock2D<B>>,
    /// The attention, when enabled.
    pub attention: Option<Attention<B>>,
}

impl<B: Backend> UNetMidBlock2D<B> {
    /// - x: `[batch, c, h, w]` → `[batch, c, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = self.resnets[0].forward(x, None);
        if let Some(attn) = &self.attention {
            h = attn.forward_spatial(h);
        }
        self.resnets[1].forward(h, None)
    }
}

impl<B: Backend> LoadWeights<B> for UNetMidBlock2D<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.resnets
            .load_weights(weights, &join(prefix, "resnets"), device)?;
        if let Some(a) = self.attention.as_mut() {
            // Files converted by diffusers < 0.14 (some SD 1.x `vae/` folders) still use the
            // deprecated names; diffusers renames them on load.
            let key = join(prefix, "attentions.0");
            let legacy = weights.shapes().contains_key(&join(&key, "query.weight"));
            let names = if legacy {
                LEGACY_VAE_NAMES
            } else {
                DIFFUSERS_NAMES
            };
            a.load_named(weights, &key, names, device)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn keeps_the_shape_with_and_without_attention() {
        let device = Default::default();
        let x = Tensor::<Cpu, 4>::ones([1, 8, 4, 4], &device);
        for attention in [true, false] {
            let m = UNetMidBlock2DConfig::new(8)
                .with_groups(4)
                .with_add_attention(attention)
                .init::<Cpu>(&device);
            assert_eq!(m.attention.is_some(), attention);
            assert_eq!(m.forward(x.clone()).dims(), [1, 8, 4, 4]);
        }
    }
}
