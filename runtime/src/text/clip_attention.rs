//! `ClipAttention`: CLIP's multi-head self-attention (biased q/k/v/out projections, optional
//! causal mask), named as transformers' `CLIPAttention`.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`ClipAttention`].
#[derive(Config, Debug)]
pub struct ClipAttentionConfig {
    /// Model width (= heads × head dim).
    pub hidden_size: usize,
    /// Attention heads.
    pub num_heads: usize,
}

impl ClipAttentionConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipAttention<B> {
        let c = self.hidden_size;
        let linear = || LinearConfig::new(c, c).init(device);
        ClipAttention {
            q_proj: linear(),
            k_proj: linear(),
            v_proj: linear(),
            out_proj: linear(),
            num_heads: self.num_heads,
        }
    }
}

/// Self-attention with transformers' weight names (`q_proj`, `k_proj`, `v_proj`, `out_proj`).
#[derive(Module, Debug)]
pub struct ClipAttention<B: Backend> {
    /// Query projection.
    pub q_proj: Linear<B>,
    /// Key projection.
    pub k_proj: Linear<B>,
    /// Value projection.
    pub v_proj: Linear<B>,
    /// Output projection.
    pub out_proj: Linear<B>,
    num_heads: usize,
}

impl<B: Backend> ClipAttention<B> {
    /// - x: `[batch, seq, hidden]`; `causal`: each position attends to itself and earlier ones
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let [batch, n, c] = x.dims();
        let h = self.num_heads;
        let d = c / h;
        let split = |t: Tensor<B, 3>| t.reshape([batch, n, h, d]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()));
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let options = AttentionModuleOptions {
            is_causal: causal,
            ..Default::default()
        };
        let out = attention(q, k, v, None, None, options);
        self.out_proj
            .forward(out.swap_dims(1, 2).reshape([batch, n, c]))
    }
}

impl<B: Backend> LoadWeights<B> for ClipAttention<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.q_proj.load_weights(weights, &k("q_proj"), device)?;
        self.k_proj.load_weights(weights, &k("k_proj"), device)?;
        self.v_proj.load_weights(weights, &k("v_proj"), device)?;
        self.out_proj.load_weights(weights, &k("out_proj"), device)
    }
}
