//! `BasicTransformerBlock`: self-attention, cross-attention over the text, GEGLU feed-forward,
//! each pre-normalised with LayerNorm and added to the residual stream.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::nn::{Attention, AttentionConfig};
use crate::ops::layer_norm;
use crate::unet::feed_forward::{FeedForward, FeedForwardConfig};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`BasicTransformerBlock`].
#[derive(Config, Debug)]
pub struct BasicTransformerBlockConfig {
    /// Width of the hidden states.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// Width of the text embeddings.
    pub cross_attention_dim: usize,
    /// LayerNorm epsilon. Default: 1e-5 (diffusers' `norm_eps`).
    #[config(default = 1e-5)]
    pub eps: f64,
}

impl BasicTransformerBlockConfig {
    /// Builds the block with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BasicTransformerBlock<B> {
        let norm = || {
            LayerNormConfig::new(self.dim)
                .with_epsilon(self.eps)
                .init(device)
        };
        BasicTransformerBlock {
            norm1: norm(),
            attn1: AttentionConfig::new(self.dim, self.dim, self.heads).init(device),
            norm2: norm(),
            attn2: AttentionConfig::new(self.dim, self.cross_attention_dim, self.heads)
                .init(device),
            norm3: norm(),
            ff: FeedForwardConfig::new(self.dim).init(device),
            eps: self.eps,
        }
    }
}

/// diffusers' `BasicTransformerBlock` with `norm_type = "layer_norm"` (SD1.5's).
#[derive(Module, Debug)]
pub struct BasicTransformerBlock<B: Backend> {
    /// Before self-attention.
    pub norm1: LayerNorm<B>,
    /// Self-attention.
    pub attn1: Attention<B>,
    /// Before cross-attention.
    pub norm2: LayerNorm<B>,
    /// Cross-attention over the text embeddings.
    pub attn2: Attention<B>,
    /// Before the feed-forward.
    pub norm3: LayerNorm<B>,
    /// GEGLU feed-forward.
    pub ff: FeedForward<B>,
    /// The layer norms' epsilon.
    pub eps: f64,
}

impl<B: Backend> BasicTransformerBlock<B> {
    /// - x: `[batch, n, dim]`
    /// - context: `[batch, text_len, cross_attention_dim]`
    /// - output: `[batch, n, dim]`
    pub fn forward(&self, x: Tensor<B, 3>, context: Tensor<B, 3>) -> Tensor<B, 3> {
        let norm = |n: &LayerNorm<B>, x: Tensor<B, 3>| layer_norm(n, x, self.eps);
        let x = self.attn1.forward(norm(&self.norm1, x.clone()), None) + x;
        let x = self
            .attn2
            .forward(norm(&self.norm2, x.clone()), Some(context))
            + x;
        self.ff.forward(norm(&self.norm3, x.clone())) + x
    }
}

impl<B: Backend> LoadWeights<B> for BasicTransformerBlock<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.norm1.load_weights(weights, &k("norm1"), device)?;
        self.attn1.load_weights(weights, &k("attn1"), device)?;
        self.norm2.load_weights(weights, &k("norm2"), device)?;
        self.attn2.load_weights(weights, &k("attn2"), device)?;
        self.norm3.load_weights(weights, &k("norm3"), device)?;
        self.ff.load_weights(weights, &k("ff"), device)
    }
}
