//! `Transformer2DModel`: GroupNorm, input projection, BasicTransformerBlocks over the flattened
//! pixels, output projection, residual.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::{conv2d, group_norm, linear, transpose};
use crate::unet::basic_transformer_block::{BasicTransformerBlock, BasicTransformerBlockConfig};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`Transformer2DModel`].
#[derive(Config, Debug)]
pub struct Transformer2DModelConfig {
    /// Channels (= attention inner width).
    pub channels: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the text embeddings.
    pub cross_attention_dim: usize,
    /// BasicTransformerBlocks. Default: 1.
    #[config(default = 1)]
    pub depth: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// Input GroupNorm epsilon. Default: 1e-6 (diffusers hard-codes it).
    #[config(default = 1e-6)]
    pub eps: f64,
    /// `proj_in`/`proj_out` are linear layers (SD2) instead of 1x1 convolutions (SD1.5).
    /// Default: false.
    #[config(default = false)]
    pub use_linear_projection: bool,
}

impl Transformer2DModelConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Transformer2DModel<B> {
        let c = self.channels;
        let proj = || {
            if self.use_linear_projection {
                Projection::Linear(LinearConfig::new(c, c).init(device))
            } else {
                Projection::Conv(Conv2dConfig::new([c, c], [1, 1]).init(device))
            }
        };
        Transformer2DModel {
            norm: GroupNormConfig::new(self.groups, c)
                .with_epsilon(self.eps)
                .init(device),
            proj_in: proj(),
            transformer_blocks: (0..self.depth)
                .map(|_| {
                    BasicTransformerBlockConfig::new(c, self.heads, self.cross_attention_dim)
                        .init(device)
                })
                .collect(),
            proj_out: proj(),
        }
    }
}

/// `proj_in` / `proj_out`: a 1x1 convolution or, equivalently placed after flattening, a linear
/// layer (weights `[c, c, 1, 1]` vs `[c, c]` in diffusers).
#[derive(Module, Debug)]
pub enum Projection<B: Backend> {
    /// 1x1 convolution on `[batch, c, h, w]`.
    Conv(Conv2d<B>),
    /// Linear layer on `[batch, h·w, c]`.
    Linear(Linear<B>),
}

impl<B: Backend> LoadWeights<B> for Projection<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        match self {
            Projection::Conv(m) => m.load_weights(weights, prefix, device),
            Projection::Linear(m) => m.load_weights(weights, prefix, device),
        }
    }
}

/// diffusers' `Transformer2DModel` for continuous inputs (weight keys `norm`, `proj_in`,
/// `transformer_blocks.{i}`, `proj_out`).
#[derive(Module, Debug)]
pub struct Transformer2DModel<B: Backend> {
    /// Input GroupNorm.
    pub norm: GroupNorm<B>,
    /// Input projection.
    pub proj_in: Projection<B>,
    /// The transformer blocks.
    pub transformer_blocks: Vec<BasicTransformerBlock<B>>,
    /// Output projection.
    pub proj_out: Projection<B>,
}

impl<B: Backend> Transformer2DModel<B> {
    /// - x: `[batch, channels, h, w]`
    /// - context: `[batch, text_len, cross_attention_dim]`
    /// - output: `[batch, channels, h, w]`
    pub fn forward(&self, x: Tensor<B, 4>, context: Tensor<B, 3>) -> Tensor<B, 4> {
        let [batch, c, height, width] = x.dims();
        let n = height * width;
        let h = group_norm(&self.norm, x.clone());
        let to_seq = |t: Tensor<B, 4>| transpose(t.reshape([batch, c, n]));
        let mut h = match &self.proj_in {
            Projection::Conv(conv) => to_seq(conv2d(conv, h)),
            Projection::Linear(lin) => linear(lin, to_seq(h)),
        };
        for block in &self.transformer_blocks {
            h = block.forward(h, context.clone());
        }
        let to_map = |t: Tensor<B, 3>| transpose(t).reshape([batch, c, height, width]);
        let h = match &self.proj_out {
            Projection::Conv(conv) => conv2d(conv, to_map(h)),
            Projection::Linear(lin) => to_map(linear(lin, h)),
        };
        h + x
    }
}

impl<B: Backend> LoadWeights<B> for Transformer2DModel<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.norm.load_weights(weights, &k("norm"), device)?;
        self.proj_in.load_weights(weights, &k("proj_in"), device)?;
        for (i, block) in self.transformer_blocks.iter_mut().enumerate() {
            block.load_weights(weights, &k(&format!("transformer_blocks.{i}")), device)?;
        }
        self.proj_out.load_weights(weights, &k("proj_out"), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn keeps_the_feature_map_shape_with_either_projection() {
        let device = Default::default();
        let x = Tensor::<Cpu, 4>::ones([2, 8, 3, 4], &device);
        let ctx = Tensor::<Cpu, 3>::ones([2, 5, 12], &device);
        for linear in [false, true] {
            let m = Transformer2DModelConfig::new(8, 2, 12)
                .with_groups(4)
                .with_depth(2)
                .with_use_linear_projection(linear)
                .init::<Cpu>(&device);
            assert_eq!(m.transformer_blocks.len(), 2);
            assert_eq!(m.forward(x.clone(), ctx.clone()).dims(), [2, 8, 3, 4]);
        }
    }
}
