//! `Attention`: multi-head scaled dot-product attention with diffusers' `Attention` options —
//! self or cross, q/k/v with or without bias, and for feature maps a GroupNorm in front and a
//! residual connection (the VAE's mid-block attention: `norm_num_groups`,
//! `residual_connection=True`). One core for the U-Net's transformer blocks, the VAE and the
//! CLIP text encoder (causal self-attention, transformers' key names).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention as burn_attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::{attention, group_norm, linear};
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
    /// Bias on the q/k/v projections (diffusers' `bias`; the output projection always has
    /// one). Default: false.
    #[config(default = false)]
    pub bias: bool,
    /// GroupNorm groups in front of the projections, for feature-map inputs
    /// ([`Attention::forward_spatial`]); `None` for none. Default: `None`.
    pub norm_num_groups: Option<usize>,
    /// That GroupNorm's epsilon. Default: 1e-6.
    #[config(default = 1e-6)]
    pub eps: f64,
}

impl AttentionConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Attention<B> {
        let c = self.query_dim;
        let proj = |i: usize| LinearConfig::new(i, c).with_bias(self.bias).init(device);
        Attention {
            group_norm: self.norm_num_groups.map(|g| {
                GroupNormConfig::new(g, c)
                    .with_epsilon(self.eps)
                    .init(device)
            }),
            to_q: proj(c),
            to_k: proj(self.context_dim),
            to_v: proj(self.context_dim),
            to_out: LinearConfig::new(c, c).init(device),
            heads: self.heads,
        }
    }
}

/// Weight names of the four projections in a file (q, k, v, out).
pub type ProjectionNames = [&'static str; 4];

/// diffusers' names.
pub const DIFFUSERS_NAMES: ProjectionNames = ["to_q", "to_k", "to_v", "to_out.0"];
/// The names diffusers < 0.14 wrote for the VAE's attention (some SD 1.x `vae/` folders);
/// diffusers renames them on load.
pub const LEGACY_VAE_NAMES: ProjectionNames = ["query", "key", "value", "proj_attn"];
/// transformers' CLIP names.
pub const CLIP_NAMES: ProjectionNames = ["q_proj", "k_proj", "v_proj", "out_proj"];

/// Multi-head attention; the weights load under diffusers' names (`group_norm`, `to_q`,
/// `to_k`, `to_v`, `to_out.0`) or, through [`Attention::load_named`], others.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Normalisation before the projections (feature-map inputs only).
    pub group_norm: Option<GroupNorm<B>>,
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

    /// Causal self-attention (each position attends to itself and earlier ones), as CLIP's
    /// text encoder runs it.
    ///
    /// - x: `[batch, n, query_dim]` → `[batch, n, query_dim]`
    pub fn forward_causal(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, n, c] = x.dims();
        let (h, d) = (self.heads, c / self.heads);
        let split = |t: Tensor<B, 3>| t.reshape([batch, n, h, d]).swap_dims(1, 2);
        let q = split(linear(&self.to_q, x.clone()));
        let k = split(linear(&self.to_k, x.clone()));
        let v = split(linear(&self.to_v, x));
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        let out = burn_attention(q, k, v, None, None, options);
        linear(&self.to_out, out.swap_dims(1, 2).reshape([batch, n, c]))
    }

    /// Self-attention over the positions of a feature map, after the GroupNorm (when there is
    /// one), plus the input (the VAE's mid-block attention).
    ///
    /// - x: `[batch, c, h, w]` → `[batch, c, h, w]`
    pub fn forward_spatial(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, c, h, w] = x.dims();
        let t = match &self.group_norm {
            Some(norm) => group_norm(norm, x.clone()),
            None => x.clone(),
        };
        let t = t.reshape([b, c, h * w]).swap_dims(1, 2);
        let out = self.forward(t, None);
        x + out.swap_dims(1, 2).reshape([b, c, h, w])
    }

    /// Loads the projections from `prefix.{names}` (and the GroupNorm from
    /// `prefix.group_norm`, when there is one).
    pub fn load_named(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        names: ProjectionNames,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        if let Some(norm) = self.group_norm.as_mut() {
            norm.load_weights(weights, &k("group_norm"), device)?;
        }
        let [q, kk, v, o] = names;
        self.to_q.load_weights(weights, &k(q), device)?;
        self.to_k.load_weights(weights, &k(kk), device)?;
        self.to_v.load_weights(weights, &k(v), device)?;
        self.to_out.load_weights(weights, &k(o), device)
    }
}

impl<B: Backend> LoadWeights<B> for Attention<B> {
    /// diffusers' names ([`DIFFUSERS_NAMES`]).
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.load_named(weights, prefix, DIFFUSERS_NAMES, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn shapes_of_the_three_forwards() {
        let device = Default::default();
        let cross = AttentionConfig::new(8, 12, 2).init::<Cpu>(&device);
        assert!(cross.group_norm.is_none() && cross.to_q.bias.is_none());
        let x = Tensor::<Cpu, 3>::ones([2, 5, 8], &device);
        let ctx = Tensor::<Cpu, 3>::ones([2, 3, 12], &device);
        assert_eq!(cross.forward(x.clone(), Some(ctx)).dims(), [2, 5, 8]);
        let clip = AttentionConfig::new(8, 8, 2)
            .with_bias(true)
            .init::<Cpu>(&device);
        assert!(clip.to_q.bias.is_some());
        assert_eq!(clip.forward_causal(x).dims(), [2, 5, 8]);
        let vae = AttentionConfig::new(8, 8, 1)
            .with_bias(true)
            .with_norm_num_groups(Some(4))
            .init::<Cpu>(&device);
        let fmap = Tensor::<Cpu, 4>::ones([2, 8, 3, 4], &device);
        assert_eq!(vae.forward_spatial(fmap).dims(), [2, 8, 3, 4]);
    }

    #[test]
    fn the_first_position_of_a_causal_attention_sees_only_itself() {
        // Changing later positions leaves position 0's output unchanged.
        let device = Default::default();
        let a = AttentionConfig::new(4, 4, 1)
            .with_bias(true)
            .init::<Cpu>(&device);
        let x = Tensor::<Cpu, 3>::random([1, 3, 4], burn::tensor::Distribution::Default, &device);
        let y = x.clone().slice_assign(
            [0..1, 1..3, 0..4],
            Tensor::<Cpu, 3>::ones([1, 2, 4], &device) * 5.0,
        );
        let first = |t: Tensor<Cpu, 3>| -> Vec<f32> {
            a.forward_causal(t)
                .slice([0..1, 0..1, 0..4])
                .into_data()
                .to_vec()
                .unwrap()
        };
        assert_eq!(first(x), first(y));
    }
}
