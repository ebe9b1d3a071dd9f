//! `Attention`: multi-head scaled dot-product attention, self or cross (diffusers' `Attention`
//! with the default processor: no bias on q/k/v, bias on the output projection).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::{attention, linear};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of an [`Attention`].
#[derive(Config, Debug)]
pub struct AttentionConfig {
    /// Query (and output) width = heads × head dim.
    pub query_dim: usize,
    /// Width of the sequence attended to (= `query_dim` for self-attention).
    pub context_dim: usize,
    /// Attention heads.
    pub heads: usize,
}

impl AttentionConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Attention<B> {
        let c = self.query_dim;
        let no_bias = |i: usize| LinearConfig::new(i, c).with_bias(false).init(device);
        Attention {
            to_q: no_bias(c),
            to_k: no_bias(self.context_dim),
            to_v: no_bias(self.context_dim),
            to_out: LinearConfig::new(c, c).init(device),
            heads: self.heads,
        }
    }
}

/// Multi-head attention with diffusers' weight names (`to_q`, `to_k`, `to_v`, `to_out.0`).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Query projection (no bias).
    pub to_q: Linear<B>,
    /// Key projection (no bias).
    pub to_k: Linear<B>,
    /// Value projection (no bias).
    pub to_v: Linear<B>,
    /// Output projection (`to_out.0`).
    pub to_out: Linear<B>,
    heads: usize,
}

impl<B: Backend> Attention<B> {
    /// - x: `[batch, n, query_dim]`
    /// - context: `[batch, m, context_dim]`, or `None` for self-attention
    /// - output: `[batch, n, query_dim]`
    pub fn forward(&self, x: Tensor<B, 3>, context: Option<Tensor<B, 3>>) -> Tensor<B, 3> {
        let context = context.unwrap_or_else(|| x.clone());
        let q = linear(&self.to_q, x);
        let k = linear(&self.to_k, context.clone());
        let v = linear(&self.to_v, context);
        // Scale 1/sqrt(head dim), no mask.
        linear(&self.to_out, attention(q, k, v, self.heads))
    }
}

impl<B: Backend> LoadWeights<B> for Attention<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.to_q.load_weights(weights, &k("to_q"), device)?;
        self.to_k.load_weights(weights, &k("to_k"), device)?;
        self.to_v.load_weights(weights, &k("to_v"), device)?;
        self.to_out.load_weights(weights, &k("to_out.0"), device)
    }
}
