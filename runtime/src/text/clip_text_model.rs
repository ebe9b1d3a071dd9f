//! `ClipTextModel`: CLIP's text transformer (token + position embeddings, causal pre-LN
//! encoder layers, final LayerNorm), loading transformers' `CLIPTextModel` weights from a
//! diffusers `text_encoder/` folder.

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde_json::Value;

use crate::error::RuntimeError;
use crate::text::clip_encoder_layer::{ClipEncoderLayer, ClipEncoderLayerConfig};
use crate::text::clip_mlp::ClipActivation;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`ClipTextModel`]; the defaults are transformers' `CLIPTextConfig`
/// defaults (what a `config.json` omitting a field means).
#[derive(Config, Debug, PartialEq)]
pub struct ClipTextConfig {
    /// Vocabulary size. Default: 49408.
    #[config(default = 49408)]
    pub vocab_size: usize,
    /// Model width. Default: 512.
    #[config(default = 512)]
    pub hidden_size: usize,
    /// Feed-forward inner width. Default: 2048.
    #[config(default = 2048)]
    pub intermediate_size: usize,
    /// Encoder layers. Default: 12.
    #[config(default = 12)]
    pub num_hidden_layers: usize,
    /// Attention heads. Default: 8.
    #[config(default = 8)]
    pub num_attention_heads: usize,
    /// Sequence length of the position table. Default: 77.
    #[config(default = 77)]
    pub max_position_embeddings: usize,
    /// Feed-forward activation. Default: quick_gelu.
    #[config(default = "ClipActivation::QuickGelu")]
    pub hidden_act: ClipActivation,
    /// LayerNorm epsilon. Default: 1e-5.
    #[config(default = 1e-5)]
    pub layer_norm_eps: f64,
}

impl ClipTextConfig {
    /// CLIP ViT-L/14's text tower (Stable Diffusion 1.x): width 768, 12 layers, 12 heads,
    /// inner 3072, quick_gelu (123,060,480 parameters).
    pub fn vit_l_14() -> Self {
        Self::new()
            .with_hidden_size(768)
            .with_intermediate_size(3072)
            .with_num_attention_heads(12)
    }

    /// Reads transformers' `config.json` of a `CLIPTextModel` (`file` names it in errors);
    /// absent fields take transformers' defaults.
    pub fn from_json_value(v: &Value, file: &Path) -> Result<Self, RuntimeError> {
        let bad = |m: String| RuntimeError::BadFile {
            file: file.to_path_buf(),
            message: m,
        };
        let get = |key: &str, default: usize| -> Result<usize, RuntimeError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_u64()
                    .filter(|&n| n > 0)
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(format!("field `{key}`: expected a positive integer"))),
            }
        };
        let d = Self::new();
        let hidden_act = match v.get("hidden_act").and_then(Value::as_str) {
            None | Some("quick_gelu") => ClipActivation::QuickGelu,
            Some("gelu") => ClipActivation::Gelu,
            Some(other) => {
                return Err(bad(format!(
                    "field `hidden_act`: `{other}` is not supported (quick_gelu or gelu)"
                )))
            }
        };
        let config = Self {
            vocab_size: get("vocab_size", d.vocab_size)?,
            hidden_size: get("hidden_size", d.hidden_size)?,
            intermediate_size: get("intermediate_size", d.intermediate_size)?,
            num_hidden_layers: get("num_hidden_layers", d.num_hidden_layers)?,
            num_attention_heads: get("num_attention_heads", d.num_attention_heads)?,
            max_position_embeddings: get("max_position_embeddings", d.max_position_embeddings)?,
            hidden_act,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(d.layer_norm_eps),
        };
        if !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
        {
            return Err(bad(format!(
                "field `num_attention_heads`: {} does not divide hidden_size {}",
                config.num_attention_heads, config.hidden_size
            )));
        }
        Ok(config)
    }

    /// Reads a `config.json` file.
    pub fn from_file(path: &Path) -> Result<Self, RuntimeError> {
        Self::from_json_value(&crate::error::read_json(path)?, path)
    }

    /// transformers' `config.json` of a `CLIPTextModel` with this configuration; `bos`, `eos`
    /// and `pad` are the tokenizer's special token ids (transformers pools at `eos`).
    pub fn to_json_value(&self, bos: u32, eos: u32, pad: u32) -> Value {
        serde_json::json!({
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            "attention_dropout": 0.0,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "dtype": "float32",
            "hidden_act": match self.hidden_act {
                ClipActivation::QuickGelu => "quick_gelu",
                ClipActivation::Gelu => "gelu",
            },
            "hidden_size": self.hidden_size,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "layer_norm_eps": self.layer_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "projection_dim": self.hidden_size,
            "vocab_size": self.vocab_size,
        })
    }

    /// Builds the model with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ClipTextModel<B> {
        let layer = ClipEncoderLayerConfig::new(
            self.hidden_size,
            self.intermediate_size,
            self.num_attention_heads,
        )
        .with_activation(self.hidden_act)
        .with_layer_norm_eps(self.layer_norm_eps);
        ClipTextModel {
            token_embedding: EmbeddingConfig::new(self.vocab_size, self.hidden_size).init(device),
            position_embedding: EmbeddingConfig::new(
                self.max_position_embeddings,
                self.hidden_size,
            )
            .init(device),
            layers: (0..self.num_hidden_layers)
                .map(|_| layer.init(device))
                .collect(),
            final_layer_norm: LayerNormConfig::new(self.hidden_size)
                .with_epsilon(self.layer_norm_eps)
                .init(device),
            vocab_size: self.vocab_size,
        }
    }
}

/// transformers' `CLIPTextModel` (weights `[text_model.]embeddings.…`, `…encoder.layers.{i}.…`,
/// `…final_layer_norm`).
#[derive(Module, Debug)]
pub struct ClipTextModel<B: Backend> {
    /// `embeddings.token_embedding`.
    pub token_embedding: Embedding<B>,
    /// `embeddings.position_embedding`.
    pub position_embedding: Embedding<B>,
    /// `encoder.layers.{i}`.
    pub layers: Vec<ClipEncoderLayer<B>>,
    /// `final_layer_norm`.
    pub final_layer_norm: LayerNorm<B>,
    #[module(skip)]
    vocab_size: usize,
}

impl<B: Backend> ClipTextModel<B> {
    /// Builds the model of `config` and loads `model.safetensors` (keys with or without the
    /// `text_model.` prefix that transformers 4 wrote; a `position_ids` buffer is ignored).
    /// Every parameter must be present with its shape, and nothing else may be in the file.
    pub fn load(
        config: &ClipTextConfig,
        path: &Path,
        device: &B::Device,
    ) -> Result<Self, RuntimeError> {
        let mut model = config.init(device);
        let mut weights = Weights::open(path)?;
        let prefix = if weights
            .shapes()
            .contains_key("text_model.embeddings.token_embedding.weight")
        {
            "text_model"
        } else {
            ""
        };
        model.load_weights_from(&mut weights, prefix, device)?;
        // transformers also saved the integer `position_ids` buffer: not a parameter.
        weights.finish_except(|k| k.ends_with("embeddings.position_ids"))?;
        Ok(model)
    }

    /// Loads every parameter from `weights` under transformers' keys below `prefix`
    /// (`text_model` or empty; does not check for left-over tensors).
    pub fn load_weights_from(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        for (e, name) in [
            (&mut self.token_embedding, "token_embedding"),
            (&mut self.position_embedding, "position_embedding"),
        ] {
            let key = join(prefix, &format!("embeddings.{name}.weight"));
            let t = weights.tensor::<B, 2>(&key, e.weight.dims(), device)?;
            e.weight = Param::from_tensor(t);
        }
        for (i, layer) in self.layers.iter_mut().enumerate() {
            layer.load_weights(
                weights,
                &join(prefix, &format!("encoder.layers.{i}")),
                device,
            )?;
        }
        self.final_layer_norm
            .load_weights(weights, &join(prefix, "final_layer_norm"), device)
    }

    /// Writes the parameters as `model.safetensors` of transformers' `CLIPTextModel` (keys
    /// under `text_model.`), through the loader ([`crate::save`]).
    pub fn save(&self, path: &Path) -> Result<(), RuntimeError> {
        crate::save::save_safetensors(
            self,
            |m: &mut Self, w, device| m.load_weights_from(w, "text_model", device),
            path,
        )
    }

    /// Vocabulary size (token ids must be below it).
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// - input_ids: `[batch, seq]` token ids (seq ≤ `max_position_embeddings`)
    /// - output: `last_hidden_state` `[batch, seq, hidden]` (after the final LayerNorm)
    pub fn forward(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        let [_, seq] = input_ids.dims();
        let positions = self
            .position_embedding
            .weight
            .val()
            .narrow(0, 0, seq)
            .unsqueeze_dim::<3>(0);
        let mut x = self.token_embedding.forward(input_ids) + positions;
        for layer in &self.layers {
            x = layer.forward(x, true);
        }
        self.final_layer_norm.forward(x)
    }
}
