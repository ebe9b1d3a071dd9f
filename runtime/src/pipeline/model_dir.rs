//! `ModelDir`: the files of a diffusers text-to-image model folder (`model_index.json`,
//! `scheduler/`, `text_encoder/`, `tokenizer/`, `unet/` or DeciDiffusion's `flexible_unet/`,
//! `vae/`), each checked to exist before anything is loaded.

use std::path::{Path, PathBuf};

use crate::error::RuntimeError;

/// Paths of a model folder's components.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDir {
    /// The folder.
    pub root: PathBuf,
    /// `scheduler/scheduler_config.json`.
    pub scheduler_config: PathBuf,
    /// `text_encoder/config.json`.
    pub text_encoder_config: PathBuf,
    /// `text_encoder/model.safetensors` (or its `.fp16` variant).
    pub text_encoder_weights: PathBuf,
    /// `tokenizer/` (vocab.json, merges.txt, configs).
    pub tokenizer: PathBuf,
    /// The U-Net's `config.json` (`unet/` or `flexible_unet/`, or `--unet DIR`).
    pub unet_config: PathBuf,
    /// The U-Net's weights.
    pub unet_weights: PathBuf,
    /// `vae/config.json`.
    pub vae_config: PathBuf,
    /// `vae/diffusion_pytorch_model.safetensors` (or its `.fp16` variant).
    pub vae_weights: PathBuf,
}

fn missing(path: &Path, what: &str) -> RuntimeError {
    RuntimeError::Io {
        file: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("{what} not found")),
    }
}

fn require(path: PathBuf, what: &str) -> Result<PathBuf, RuntimeError> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(missing(&path, what))
    }
}

/// The safetensors weights of a component folder: `stem.safetensors`, else
/// `stem.fp16.safetensors`, else the folder's only `*.safetensors` file.
pub fn find_weights(dir: &Path, stem: &str) -> Result<PathBuf, RuntimeError> {
    for name in [
        format!("{stem}.safetensors"),
        format!("{stem}.fp16.safetensors"),
    ] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    if dir.join(format!("{stem}.safetensors.index.json")).is_file() {
        return Err(RuntimeError::BadFile {
            file: dir.join(format!("{stem}.safetensors.index.json")),
            message: "sharded weights are not supported: merge them into one file".into(),
        });
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| RuntimeError::Io {
            file: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(missing(
            &dir.join(format!("{stem}.safetensors")),
            "weights file",
        )),
        _ => Err(RuntimeError::BadFile {
            file: dir.to_path_buf(),
            message: format!(
                "several .safetensors files and no {stem}.safetensors: which one holds the weights?"
            ),
        }),
    }
}

impl ModelDir {
    /// Locates the components of the model folder `root`; `unet_dir` replaces the folder's
    /// own U-Net (a folder with a unas- or diffusers-style `config.json` and weights).
    pub fn open(root: &Path, unet_dir: Option<&Path>) -> Result<Self, RuntimeError> {
        if !root.is_dir() {
            return Err(missing(root, "model folder"));
        }
        require(root.join("model_index.json"), "model_index.json")?;
        let unet = match unet_dir {
            Some(d) => {
                if !d.is_dir() {
                    return Err(missing(d, "U-Net folder"));
                }
                d.to_path_buf()
            }
            None => ["unet", "flexible_unet"]
                .iter()
                .map(|n| root.join(n))
                .find(|d| d.join("config.json").is_file())
                .ok_or_else(|| missing(&root.join("unet/config.json"), "U-Net config"))?,
        };
        let sub = |n: &str| root.join(n);
        Ok(Self {
            root: root.to_path_buf(),
            scheduler_config: require(
                sub("scheduler").join("scheduler_config.json"),
                "scheduler config",
            )?,
            text_encoder_config: require(
                sub("text_encoder").join("config.json"),
                "text encoder config",
            )?,
            text_encoder_weights: find_weights(&sub("text_encoder"), "model")?,
            tokenizer: {
                let t = sub("tokenizer");
                if !t.join("tokenizer.json").is_file() {
                    require(t.join("vocab.json"), "tokenizer vocabulary")?;
                    require(t.join("merges.txt"), "tokenizer merges")?;
                }
                t
            },
            unet_config: require(unet.join("config.json"), "U-Net config")?,
            unet_weights: find_weights(&unet, "diffusion_pytorch_model")?,
            vae_config: require(sub("vae").join("config.json"), "VAE config")?,
            vae_weights: find_weights(&sub("vae"), "diffusion_pytorch_model")?,
        })
    }
}
