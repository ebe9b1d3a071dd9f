//! Data encoded by a diffusers pipeline's own VAE and text encoder (`[quality] pipeline =
//! DIR`): the latents live in that pipeline's latent space and the caption embeddings are its
//! CLIP's, so that its U-Net can teach a student on them (the full-scale path: SD1.5 as the
//! teacher). Replaces the small VAE and the frozen caption encoder of the default preparation.

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_runtime::pipeline::model_dir::find_weights;
use unas_runtime::text::{ClipTextConfig, ClipTextModel, ClipTokenizer};
use unas_runtime::vae::{AutoencoderKL, AutoencoderKLConfig};

use crate::EvalError;

/// The encoding half of a pipeline folder: VAE, tokenizer and text encoder.
pub struct PipelineEncoders {
    /// The folder.
    pub dir: PathBuf,
    /// `vae/` (the latents are `encode` means / log-variances; the U-Net sees them × the
    /// config's `scaling_factor`).
    pub vae: AutoencoderKL<Cpu>,
    /// `vae/config.json`.
    pub vae_config: AutoencoderKLConfig,
    /// `tokenizer/`.
    pub tokenizer: ClipTokenizer,
    /// `text_encoder/`.
    pub text_encoder: ClipTextModel<Cpu>,
    /// `text_encoder/config.json`.
    pub text_config: ClipTextConfig,
}

fn err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Unsupported(format!("quality.pipeline: {e}"))
}

/// SHA-256 (first 8 bytes, hex) of a file's bytes.
fn file_sha16(path: &Path) -> Result<String, EvalError> {
    let bytes = std::fs::read(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    Ok(super::hash::sha16(&bytes))
}

/// The weights files of the encoding components of `dir`, checked to exist.
fn files(dir: &Path) -> Result<[PathBuf; 3], EvalError> {
    if !dir.is_dir() {
        return Err(err(format!("{}: pipeline folder not found", dir.display())));
    }
    let vae = find_weights(&dir.join("vae"), "diffusion_pytorch_model").map_err(err)?;
    let text = find_weights(&dir.join("text_encoder"), "model").map_err(err)?;
    let vocab = dir.join("tokenizer");
    if !vocab.is_dir() {
        return Err(err(format!("{}: not found", vocab.display())));
    }
    Ok([vae, text, vocab])
}

/// What identifies the encoders in a cache key: the folder and its weights' hashes (so that
/// other weights in the same folder are other data).
pub fn cache_key(dir: &Path) -> Result<serde_json::Value, EvalError> {
    let [vae, text, _] = files(dir)?;
    Ok(serde_json::json!({
        "folder": dir.display().to_string(),
        "vae": file_sha16(&vae)?,
        "text_encoder": file_sha16(&text)?,
    }))
}

impl PipelineEncoders {
    /// Loads `dir`'s VAE, tokenizer and text encoder (errors name the file and field).
    pub fn load(dir: &Path) -> Result<Self, EvalError> {
        let [vae_file, text_file, tok_dir] = files(dir)?;
        let device = Default::default();
        let vae_config =
            AutoencoderKLConfig::from_file(&dir.join("vae/config.json")).map_err(err)?;
        if vae_config.shift_factor.is_some() {
            return Err(err(format!(
                "{}: field `shift_factor`: VAEs with a latent shift are not supported",
                dir.join("vae/config.json").display()
            )));
        }
        let vae = AutoencoderKL::load(&vae_config, &vae_file, &device).map_err(err)?;
        let tokenizer = ClipTokenizer::from_dir(&tok_dir).map_err(err)?;
        let text_config =
            ClipTextConfig::from_file(&dir.join("text_encoder/config.json")).map_err(err)?;
        if tokenizer.max_length() > text_config.max_position_embeddings {
            return Err(err(format!(
                "{}: the tokenizer pads to {} tokens, the text encoder has {} positions",
                tok_dir.display(),
                tokenizer.max_length(),
                text_config.max_position_embeddings
            )));
        }
        let text_encoder = ClipTextModel::load(&text_config, &text_file, &device).map_err(err)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            vae,
            vae_config,
            tokenizer,
            text_encoder,
            text_config,
        })
    }

    /// `[tokens, width]` of the caption embeddings.
    pub fn text_shape(&self) -> [usize; 2] {
        [self.tokenizer.max_length(), self.text_config.hidden_size]
    }

    /// Embeddings `[n, tokens, width]` of `captions` (CLIP's last hidden state, as diffusers'
    /// pipeline conditions its U-Net), flattened row-major.
    pub fn encode_captions(&self, captions: &[String]) -> Vec<f32> {
        let device = Default::default();
        let len = self.tokenizer.max_length();
        let mut out = Vec::new();
        for chunk in captions.chunks(64) {
            let ids: Vec<i64> = chunk
                .iter()
                .flat_map(|c| {
                    self.tokenizer
                        .encode_padded(c)
                        .ids
                        .into_iter()
                        .map(i64::from)
                })
                .collect();
            let ids =
                Tensor::<Cpu, 2, Int>::from_data(TensorData::new(ids, [chunk.len(), len]), &device);
            let emb = self.text_encoder.forward(ids).into_data();
            out.extend(emb.to_vec::<f32>().expect("f32 embeddings"));
        }
        out
    }
}
