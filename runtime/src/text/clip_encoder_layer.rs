//! `ClipEncoderLayer`: one pre-LayerNorm transformer layer of CLIP's text tower.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::nn::attention::CLIP_NAMES;
use crate::nn::{Attention, AttentionConfig};
use crate::text::clip_mlp::{ClipActivation, ClipMlp, ClipMlpConfig};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`ClipEncoderLayer`].
#[derive(Config, Debug)]
pub struct ClipEncoderLayerConfig {
    /// Model width.
    pub hidden_size: usize,
    /// Feed-forward inner width.
    pub intermediate_size: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Feed-forward activation. Default: quick_gelu.
    #[config(default = "ClipActivation::QuickGelu")]
    pub activation: ClipActivation,
    /// LayerNorm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

impl ClipEncoderLayerConfig {
    /// Builds the layer with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipEncoderLayer<B> {
        let norm = || {
            LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device)
        };
        ClipEncoderLayer {
            layer_norm1: norm(),
            // transformers' `CLIPAttention`: self-attention, q/k/v with bias.
            self_attn: AttentionConfig::new(self.hidden_size, self.hidden_size, self.num_heads)
                .with_bias(true)
                .init(device),
            layer_norm2: norm(),
            mlp: ClipMlpConfig::new(self.hidden_size, self.intermediate_size)
                .with_activation(self.activation)
                .init(device),
        }
    }
}

/// transformers' `CLIPEncoderLayer`: x + attn(ln1(x)), then x + mlp(ln2(x)).
#[derive(Module, Debug)]
pub struct ClipEncoderLayer<B: Backend> {
    /// Norm before attention.
    pub layer_norm1: LayerNorm<B>,
    /// Self-attention (causal in CLIP's text tower; keys `q_proj`, `k_proj`, `v_proj`,
    /// `out_proj`).
    pub self_attn: Attention<B>,
    /// Norm before the feed-forward block.
    pub layer_norm2: LayerNorm<B>,
    /// Feed-forward block.
    pub mlp: ClipMlp<B>,
}

impl<B: Backend> ClipEncoderLayer<B> {
    /// - x: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, causal: bool) -> Tensor<B, 3> {
        let h = self.layer_norm1.forward(x.clone());
        let h = if causal {
            self.self_attn.forward_causal(h)
        } else {
            self.self_attn.forward(h, None)
        };
        let x = x + h;
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

impl<B: Backend> LoadWeights<B> for ClipEncoderLayer<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let k = |n: &str| join(prefix, n);
        self.layer_norm1
            .load_weights(weights, &k("layer_norm1"), device)?;
        self.self_attn
            .load_named(weights, &k("self_attn"), CLIP_NAMES, device)?;
        self.layer_norm2
            .load_weights(weights, &k("layer_norm2"), device)?;
        self.mlp.load_weights(weights, &k("mlp"), device)
    }
}
