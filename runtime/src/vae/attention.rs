//! `VaeAttention`: the spatial self-attention of the AutoencoderKL mid block (diffusers'
//! `Attention` with a GroupNorm, biased projections and a residual connection).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`VaeAttention`].
#[derive(Config, Debug)]
pub struct VaeAttentionConfig {
    /// Channels.
    pub channels: usize,
    /// Attention heads. Default: 1 (AutoencoderKL sets the head size to the channel count).
    #[config(default = 1)]
    pub heads: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub groups: usize,
    /// GroupNorm epsilon. Default: 1e-6.
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl VaeAttentionConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VaeAttention<B> {
        let c = self.channels;
        let linear = || LinearConfig::new(c, c).init(device);
        VaeAttention {
            group_norm: GroupNormConfig::new(self.groups, c)
                .with_epsilon(self.eps)
                .init(device),
            to_q: linear(),
            to_k: linear(),
            to_v: linear(),
            to_out: linear(),
            heads: self.heads,
        }
    }
}

/// Keys `group_norm`, `to_q`, `to_k`, `to_v`, `to_out.0` (current diffusers names; the
/// deprecated `query`, `key`, `value`, `proj_attn` are read too).
#[derive(Module, Debug)]
pub struct VaeAttention<B: Backend> {
    /// Normalisation before the projections.
    pub group_norm: GroupNorm<B>,
    /// Query projection.
    pub to_q: Linear<B>,
    /// Key projection.
    pub to_k: Linear<B>,
    /// Value projection.
    pub to_v: Linear<B>,
    /// Output projection (`to_out.0`).
    pub to_out: Linear<B>,
    heads: usize,
}

impl<B: Backend> VaeAttention<B> {
    /// - x: `[batch, c, h, w]` → `[batch, c, h, w]` (x + attention(norm(x)))
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let n = h * w;
        let t = self
            .group_norm
            .forward(x.clone())
            .reshape([b, c, n])
            .swap_dims(1, 2);
        let heads = self.heads;
        let d = c / heads;
        let split = |t: Tensor<B, 3>| t.reshape([b, n, heads, d]).swap_dims(1, 2);
        let q = split(self.to_q.forward(t.clone()));
        let k = split(self.to_k.forward(t.clone()));
        let v = split(self.to_v.forward(t));
        let out = attention(q, k, v, None, None, AttentionModuleOptions::default());
        let out = self.to_out.forward(out.swap_dims(1, 2).reshape([b, n, c]));
        x + out.swap_dims(1, 2).reshape([b, c, h, w])
    }
}

impl<B: Backend> LoadWeights<B> for VaeAttention<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.group_norm
            .load_weights(weights, &k("group_norm"), device)?;
        // Files converted by diffusers < 0.14 (e.g. some SD 1.x `vae/` folders) still use the
        // deprecated names `query`, `key`, `value`, `proj_attn`; diffusers renames them on load.
        let legacy = weights.shapes().contains_key(&k("query.weight"));
        let [q, kk, v, o] = if legacy {
            ["query", "key", "value", "proj_attn"]
        } else {
            ["to_q", "to_k", "to_v", "to_out.0"]
        };
        self.to_q.load_weights(weights, &k(q), device)?;
        self.to_k.load_weights(weights, &k(kk), device)?;
        self.to_v.load_weights(weights, &k(v), device)?;
        self.to_out.load_weights(weights, &k(o), device)
    }
}
