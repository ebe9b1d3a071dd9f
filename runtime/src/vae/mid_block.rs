//! `VaeMidBlock`: ResNet, optional self-attention, ResNet (diffusers' `UNetMidBlock2D` as the
//! AutoencoderKL uses it).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::vae::attention::{VaeAttention, VaeAttentionConfig};
use crate::vae::resnet::{VaeResnetBlock2D, VaeResnetBlock2DConfig};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`VaeMidBlock`].
#[derive(Config, Debug)]
pub struct VaeMidBlockConfig {
    /// Channels.
    pub channels: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// With the attention between the ResNets (`mid_block_add_attention`). Default: true.
    #[config(default = true)]
    pub add_attention: bool,
}

impl VaeMidBlockConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VaeMidBlock<B> {
        let c = self.channels;
        let resnet = || {
            VaeResnetBlock2DConfig::new(c, c)
                .with_groups(self.groups)
                .init(device)
        };
        VaeMidBlock {
            resnets: vec![resnet(), resnet()],
            attention: self.add_attention.then(|| {
                VaeAttentionConfig::new(c)
                    .with_groups(self.groups)
                    .init(device)
            }),
        }
    }
}

/// Keys `resnets.{0,1}`, `attentions.0`.
#[derive(Module, Debug)]
pub struct VaeMidBlock<B: Backend> {
    /// The two ResNets.
    pub resnets: Vec<VaeResnetBlock2D<B>>,
    /// The attention, when enabled.
    pub attention: Option<VaeAttention<B>>,
}

impl<B: Backend> VaeMidBlock<B> {
    /// - x: `[batch, c, h, w]` → `[batch, c, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let mut h = self.resnets[0].forward(x);
        if let Some(attn) = &self.attention {
            h = attn.forward(h);
        }
        self.resnets[1].forward(h)
    }
}

impl<B: Backend> LoadWeights<B> for VaeMidBlock<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        for (i, r) in self.resnets.iter_mut().enumerate() {
            r.load_weights(weights, &join(prefix, &format!("resnets.{i}")), device)?;
        }
        if let Some(a) = self.attention.as_mut() {
            a.load_weights(weights, &join(prefix, "attentions.0"), device)?;
        }
        Ok(())
    }
}
