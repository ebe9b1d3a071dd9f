//! `AutoencoderKL`: Stable Diffusion's VAE. The encoder maps an image to the mean and
//! log-variance of its latent; the decoder maps latents back to an image. Weight keys and the
//! configuration are diffusers' (`vae/config.json`, `vae/diffusion_pytorch_model.safetensors`).

use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig2d};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde_json::Value;

use crate::error::RuntimeError;
use crate::ops::{conv2d, group_norm_silu};
use crate::vae::coder_block::{CoderBlock2D, CoderBlock2DConfig, Resample};
use crate::vae::mid_block::{UNetMidBlock2D, UNetMidBlock2DConfig};
use crate::weights::{LoadWeights, Weights};

/// Configuration of an [`AutoencoderKL`]; defaults are diffusers' `AutoencoderKL` defaults
/// except where SD's file always sets them.
#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderKLConfig {
    /// Image channels in. Default: 3.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels out. Default: 3.
    #[config(default = 3)]
    pub out_channels: usize,
    /// Latent channels. Default: 4.
    #[config(default = 4)]
    pub latent_channels: usize,
    /// Channels per resolution (SD: 128, 256, 512, 512). Default: [64].
    #[config(default = "vec![64]")]
    pub block_out_channels: Vec<usize>,
    /// ResNets per encoder block (decoder blocks have one more). Default: 1.
    #[config(default = 1)]
    pub layers_per_block: usize,
    /// GroupNorm groups. Default: 32.
    #[config(default = 32)]
    pub norm_num_groups: usize,
    /// Latent scale: the U-Net sees `(z − shift) × scaling_factor`. Default: 0.18215.
    #[config(default = 0.18215)]
    pub scaling_factor: f64,
    /// Latent shift (SD3/Flux VAEs; none for SD). Default: none.
    pub shift_factor: Option<f64>,
    /// 1x1 conv after the encoder. Default: true.
    #[config(default = true)]
    pub use_quant_conv: bool,
    /// 1x1 conv before the decoder. Default: true.
    #[config(default = true)]
    pub use_post_quant_conv: bool,
    /// Attention in the mid blocks. Default: true.
    #[config(default = true)]
    pub mid_block_add_attention: bool,
}

impl AutoencoderKLConfig {
    /// Stable Diffusion 1.x/2.x's VAE (83,653,863 parameters).
    pub fn stable_diffusion() -> Self {
        Self::new()
            .with_block_out_channels(vec![128, 256, 512, 512])
            .with_layers_per_block(2)
    }

    /// Reads diffusers' `vae/config.json` (`file` names it in errors).
    pub fn from_json_value(v: &Value, file: &Path) -> Result<Self, RuntimeError> {
        let bad = |m: String| RuntimeError::BadFile {
            file: file.to_path_buf(),
            message: m,
        };
        let d = Self::new();
        let usize_of = |key: &str, default: usize| -> Result<usize, RuntimeError> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_u64()
                    .filter(|&n| n > 0)
                    .map(|n| n as usize)
                    .ok_or_else(|| bad(format!("field `{key}`: expected a positive integer"))),
            }
        };
        let bool_of =
            |key: &str, default: bool| v.get(key).and_then(Value::as_bool).unwrap_or(default);
        let block_out_channels = match v.get("block_out_channels") {
            None => d.block_out_channels.clone(),
            Some(x) => x
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|c| c.as_u64().filter(|&c| c > 0).map(|c| c as usize))
                        .collect::<Option<Vec<_>>>()
                })
                .filter(|a| !a.is_empty())
                .ok_or_else(|| {
                    bad("field `block_out_channels`: expected a list of positive integers".into())
                })?,
        };
        for key in ["down_block_types", "up_block_types"] {
            if let Some(types) = v.get(key).and_then(Value::as_array) {
                let want = if key == "down_block_types" {
                    "DownEncoderBlock2D"
                } else {
                    "UpDecoderBlock2D"
                };
                if types.len() != block_out_channels.len()
                    || types.iter().any(|t| t.as_str() != Some(want))
                {
                    return Err(bad(format!(
                        "field `{key}`: expected {} × {want}",
                        block_out_channels.len()
                    )));
                }
            }
        }
        if let Some(act) = v.get("act_fn").and_then(Value::as_str) {
            if act != "silu" {
                return Err(bad(format!(
                    "field `act_fn`: `{act}` is not supported (silu)"
                )));
            }
        }
        let config = Self {
            in_channels: usize_of("in_channels", d.in_channels)?,
            out_channels: usize_of("out_channels", d.out_channels)?,
            latent_channels: usize_of("latent_channels", d.latent_channels)?,
            block_out_channels,
            layers_per_block: usize_of("layers_per_block", d.layers_per_block)?,
            norm_num_groups: usize_of("norm_num_groups", d.norm_num_groups)?,
            scaling_factor: v
                .get("scaling_factor")
                .and_then(Value::as_f64)
                .unwrap_or(d.scaling_factor),
            shift_factor: v.get("shift_factor").and_then(Value::as_f64),
            use_quant_conv: bool_of("use_quant_conv", true),
            use_post_quant_conv: bool_of("use_post_quant_conv", true),
            mid_block_add_attention: bool_of("mid_block_add_attention", true),
        };
        if let Some(c) = config
            .block_out_channels
            .iter()
            .find(|&&c| !c.is_multiple_of(config.norm_num_groups))
        {
            return Err(bad(format!(
                "field `norm_num_groups`: {} does not divide {c} channels",
                config.norm_num_groups
            )));
        }
        Ok(config)
    }

    /// Reads a `config.json` file.
    pub fn from_file(path: &Path) -> Result<Self, RuntimeError> {
        Self::from_json_value(&crate::error::read_json(path)?, path)
    }

    /// diffusers' `vae/config.json` of an `AutoencoderKL` with this configuration, for images
    /// of `sample_size` pixels.
    pub fn to_json_value(&self, sample_size: usize) -> Value {
        let n = self.block_out_channels.len();
        serde_json::json!({
            "_class_name": "AutoencoderKL",
            "_diffusers_version": "0.42.1",
            "act_fn": "silu",
            "block_out_channels": self.block_out_channels,
            "down_block_types": vec!["DownEncoderBlock2D"; n],
            "up_block_types": vec!["UpDecoderBlock2D"; n],
            "force_upcast": true,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "latent_channels": self.latent_channels,
            "latents_mean": null,
            "latents_std": null,
            "layers_per_block": self.layers_per_block,
            "mid_block_add_attention": self.mid_block_add_attention,
            "norm_num_groups": self.norm_num_groups,
            "sample_size": sample_size,
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
            "use_quant_conv": self.use_quant_conv,
            "use_post_quant_conv": self.use_post_quant_conv,
        })
    }

    /// Spatial factor between image and latent (2^(resolutions − 1); 8 for SD).
    pub fn downscale(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }

    /// Builds the model with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> AutoencoderKL<B> {
        let ch = &self.block_out_channels;
        let n = ch.len();
        let g = self.norm_num_groups;
        let conv3 = |i: usize, o: usize| {
            Conv2dConfig::new([i, o], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        let norm = |c: usize| GroupNormConfig::new(g, c).with_epsilon(1e-6).init(device);
        let mid = UNetMidBlock2DConfig::new(ch[n - 1])
            .with_groups(g)
            .with_add_attention(self.mid_block_add_attention);
        let z2 = 2 * self.latent_channels;
        let encoder = Encoder {
            conv_in: conv3(self.in_channels, ch[0]),
            down_blocks: (0..n)
                .map(|i| {
                    CoderBlock2DConfig::new(
                        if i == 0 { ch[0] } else { ch[i - 1] },
                        ch[i],
                        self.layers_per_block,
                        if i + 1 < n {
                            Resample::Down
                        } else {
                            Resample::Keep
                        },
                    )
                    .with_groups(g)
                    .init(device)
                })
                .collect(),
            mid_block: mid.init(device),
            conv_norm_out: norm(ch[n - 1]),
            conv_out: conv3(ch[n - 1], z2),
        };
        let rev: Vec<usize> = ch.iter().rev().copied().collect();
        let decoder = Decoder {
            conv_in: conv3(self.latent_channels, rev[0]),
            mid_block: mid.init(device),
            up_blocks: (0..n)
                .map(|i| {
                    CoderBlock2DConfig::new(
                        if i == 0 { rev[0] } else { rev[i - 1] },
                        rev[i],
                        self.layers_per_block + 1,
                        if i + 1 < n {
                            Resample::Up
                        } else {
                            Resample::Keep
                        },
                    )
                    .with_groups(g)
                    .init(device)
                })
                .collect(),
            conv_norm_out: norm(ch[0]),
            conv_out: conv3(ch[0], self.out_channels),
        };
        let one = |c: usize| Conv2dConfig::new([c, c], [1, 1]).init(device);
        AutoencoderKL {
            encoder,
            decoder,
            quant_conv: self.use_quant_conv.then(|| one(z2)),
            post_quant_conv: self.use_post_quant_conv.then(|| one(self.latent_channels)),
            scaling_factor: self.scaling_factor,
            shift_factor: self.shift_factor.unwrap_or(0.0),
        }
    }
}

/// diffusers' `Encoder` (keys `encoder.conv_in`, `encoder.down_blocks.{i}`, `encoder.mid_block`,
/// `encoder.conv_norm_out`, `encoder.conv_out`).
#[derive(Module, Debug)]
pub struct Encoder<B: Backend> {
    /// Image → first width.
    pub conv_in: Conv2d<B>,
    /// One block per resolution.
    pub down_blocks: Vec<CoderBlock2D<B>>,
    /// ResNet, attention, ResNet.
    pub mid_block: UNetMidBlock2D<B>,
    /// Final norm.
    pub conv_norm_out: GroupNorm<B>,
    /// → 2 × latent channels (mean and log-variance).
    pub conv_out: Conv2d<B>,
}

/// diffusers' `Decoder` (keys `decoder.conv_in`, `decoder.mid_block`, `decoder.up_blocks.{i}`,
/// `decoder.conv_norm_out`, `decoder.conv_out`).
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Latent → last width.
    pub conv_in: Conv2d<B>,
    /// ResNet, attention, ResNet.
    pub mid_block: UNetMidBlock2D<B>,
    /// One block per resolution, widest first.
    pub up_blocks: Vec<CoderBlock2D<B>>,
    /// Final norm.
    pub conv_norm_out: GroupNorm<B>,
    /// → image channels.
    pub conv_out: Conv2d<B>,
}

/// The variational autoencoder.
#[derive(Module, Debug)]
pub struct AutoencoderKL<B: Backend> {
    /// Image → latent distribution.
    pub encoder: Encoder<B>,
    /// Latent → image.
    pub decoder: Decoder<B>,
    /// 1x1 conv after the encoder.
    pub quant_conv: Option<Conv2d<B>>,
    /// 1x1 conv before the decoder.
    pub post_quant_conv: Option<Conv2d<B>>,
    #[module(skip)]
    scaling_factor: f64,
    #[module(skip)]
    shift_factor: f64,
}

impl<B: Backend> AutoencoderKL<B> {
    /// Builds the model of `config` and loads diffusers' safetensors weights; every parameter
    /// must be present with its shape and the file must hold nothing else.
    pub fn load(
        config: &AutoencoderKLConfig,
        path: &Path,
        device: &B::Device,
    ) -> Result<Self, RuntimeError> {
        let mut model = config.init(device);
        let mut w = Weights::open(path)?;
        model.load_weights_from(&mut w, device)?;
        w.finish()?;
        Ok(model)
    }

    /// Loads every parameter from `w` under diffusers' keys (does not check for left-over
    /// tensors; see [`Weights::finish`]).
    pub fn load_weights_from(
        &mut self,
        w: &mut Weights,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let e = &mut self.encoder;
        e.conv_in.load_weights(w, "encoder.conv_in", device)?;
        e.down_blocks
            .load_weights(w, "encoder.down_blocks", device)?;
        e.mid_block.load_weights(w, "encoder.mid_block", device)?;
        e.conv_norm_out
            .load_weights(w, "encoder.conv_norm_out", device)?;
        e.conv_out.load_weights(w, "encoder.conv_out", device)?;
        let d = &mut self.decoder;
        d.conv_in.load_weights(w, "decoder.conv_in", device)?;
        d.mid_block.load_weights(w, "decoder.mid_block", device)?;
        d.up_blocks.load_weights(w, "decoder.up_blocks", device)?;
        d.conv_norm_out
            .load_weights(w, "decoder.conv_norm_out", device)?;
        d.conv_out.load_weights(w, "decoder.conv_out", device)?;
        if let Some(c) = self.quant_conv.as_mut() {
            c.load_weights(w, "quant_conv", device)?;
        }
        if let Some(c) = self.post_quant_conv.as_mut() {
            c.load_weights(w, "post_quant_conv", device)?;
        }
        Ok(())
    }

    /// Writes the parameters as a diffusers safetensors file under the keys [`Self::load`]
    /// reads (through its loader: [`crate::save`]).
    pub fn save(&self, path: &Path) -> Result<(), RuntimeError> {
        crate::save::save_safetensors(self, Self::load_weights_from, path)
    }

    /// Latent scaling factor from the config.
    pub fn scaling_factor(&self) -> f64 {
        self.scaling_factor
    }

    /// Latent shift from the config (0 for SD).
    pub fn shift_factor(&self) -> f64 {
        self.shift_factor
    }

    /// Encoder + `quant_conv`.
    /// - image: `[batch, in_channels, H, W]` in [−1, 1]
    /// - output: (mean, log-variance clamped to [−30, 20]), each `[batch, latent, H/f, W/f]`
    pub fn encode(&self, image: Tensor<B, 4>) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let e = &self.encoder;
        let mut h = conv2d(&e.conv_in, image);
        for b in &e.down_blocks {
            h = b.forward(h);
        }
        h = e.mid_block.forward(h);
        h = conv2d(&e.conv_out, group_norm_silu(&e.conv_norm_out, h));
        if let Some(c) = &self.quant_conv {
            h = conv2d(c, h);
        }
        let [b, c2, hh, ww] = h.dims();
        let c = c2 / 2;
        let mean = h.clone().slice([0..b, 0..c, 0..hh, 0..ww]);
        let logvar = h.slice([0..b, c..c2, 0..hh, 0..ww]).clamp(-30.0, 20.0);
        (mean, logvar)
    }

    /// `post_quant_conv` + decoder (no latent scaling: divide by the scaling factor first).
    /// - latents: `[batch, latent, h, w]`
    /// - output: image `[batch, out_channels, h·f, w·f]`, nominally in [−1, 1]
    pub fn decode(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        let d = &self.decoder;
        let mut h = match &self.post_quant_conv {
            Some(c) => conv2d(c, latents),
            None => latents,
        };
        h = conv2d(&d.conv_in, h);
        h = d.mid_block.forward(h);
        for b in &d.up_blocks {
            h = b.forward(h);
        }
        conv2d(&d.conv_out, group_norm_silu(&d.conv_norm_out, h))
    }
}
