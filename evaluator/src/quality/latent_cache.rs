//! Precomputed latents (the seed's first training technique): every image is encoded once by
//! the VAE encoder and its posterior **mean and log-variance** (not a sample) are stored, with
//! the caption's text embedding, in safetensors shards described by `manifest.json`. Training
//! draws each latent from N(mean, var) anew.

use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Samples per shard file.
pub const SHARD: usize = 512;

/// One shard file of the cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ShardInfo {
    /// File name within the cache folder.
    pub file: String,
    /// Index of its first sample.
    pub start: usize,
    /// Samples in it.
    pub count: usize,
}

/// `manifest.json` of a latent cache.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Manifest {
    /// Format version (1).
    pub version: u32,
    /// The dataset (with its parameters).
    pub dataset: String,
    /// Latent shape `[channels, h, w]` per sample.
    pub latent: [usize; 3],
    /// Text embedding shape `[tokens, width]` per sample.
    pub text: [usize; 2],
    /// The U-Net sees `latent × scaling_factor` (1 / standard deviation of the means).
    pub scaling_factor: f64,
    /// Caption of each sample.
    pub captions: Vec<String>,
    /// Attribute labels of each sample (empty rows when the dataset has none).
    pub labels: Vec<Vec<usize>>,
    /// The shard files, in order.
    pub shards: Vec<ShardInfo>,
    /// Free-form provenance (VAE training, text encoder).
    pub provenance: serde_json::Value,
}

/// Latents (posterior mean and log-variance) and text embeddings of a dataset, in memory.
#[derive(Clone, Debug)]
pub struct LatentCache {
    /// The manifest.
    pub manifest: Manifest,
    /// `[n, c, h, w]` posterior means.
    pub mean: Vec<f32>,
    /// `[n, c, h, w]` posterior log-variances.
    pub logvar: Vec<f32>,
    /// `[n, tokens, width]` text embeddings.
    pub context: Vec<f32>,
}

fn file_err(file: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl LatentCache {
    /// Samples in the cache.
    pub fn len(&self) -> usize {
        self.manifest.captions.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values per latent.
    pub fn latent_len(&self) -> usize {
        self.manifest.latent.iter().product()
    }

    /// Values per text embedding.
    pub fn text_len(&self) -> usize {
        self.manifest.text.iter().product()
    }

    /// Writes the shards and the manifest into `dir` (which must exist).
    pub fn save(&self, dir: &Path) -> Result<(), EvalError> {
        let (l, t) = (self.latent_len(), self.text_len());
        let [c, h, w] = self.manifest.latent;
        let [tl, td] = self.manifest.text;
        let mut manifest = self.manifest.clone();
        manifest.shards.clear();
        for (k, start) in (0..self.len()).step_by(SHARD).enumerate() {
            let n = SHARD.min(self.len() - start);
            let file = format!("latents-{k:05}.safetensors");
            let mean = bytes(&self.mean[start * l..(start + n) * l]);
            let logvar = bytes(&self.logvar[start * l..(start + n) * l]);
            let context = bytes(&self.context[start * t..(start + n) * t]);
            fn view(data: &[u8], shape: Vec<usize>) -> TensorView<'_> {
                TensorView::new(Dtype::F32, shape, data).expect("shape matches the data")
            }
            let tensors = vec![
                ("mean", view(&mean, vec![n, c, h, w])),
                ("logvar", view(&logvar, vec![n, c, h, w])),
                ("context", view(&context, vec![n, tl, td])),
            ];
            let path = dir.join(&file);
            safetensors::serialize_to_file(tensors, None, &path).map_err(|e| file_err(&path, e))?;
            manifest.shards.push(ShardInfo {
                file,
                start,
                count: n,
            });
        }
        let path = dir.join("manifest.json");
        let text = serde_json::to_string_pretty(&manifest).expect("serialisable");
        std::fs::write(&path, text).map_err(|e| file_err(&path, e))
    }

    /// Reads a cache written by [`LatentCache::save`], checking every shard against the
    /// manifest.
    pub fn load(dir: &Path) -> Result<Self, EvalError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| file_err(&path, e))?;
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| file_err(&path, e))?;
        let n = manifest.captions.len();
        let (l, t): (usize, usize) = (
            manifest.latent.iter().product(),
            manifest.text.iter().product(),
        );
        let (mut mean, mut logvar, mut context) = (
            Vec::with_capacity(n * l),
            Vec::with_capacity(n * l),
            Vec::with_capacity(n * t),
        );
        for shard in &manifest.shards {
            let file: PathBuf = dir.join(&shard.file);
            let data = std::fs::read(&file).map_err(|e| file_err(&file, e))?;
            let st =
                safetensors::SafeTensors::deserialize(&data).map_err(|e| file_err(&file, e))?;
            for (name, out, per) in [
                ("mean", &mut mean, l),
                ("logvar", &mut logvar, l),
                ("context", &mut context, t),
            ] {
                let view = st
                    .tensor(name)
                    .map_err(|e| file_err(&file, format!("tensor `{name}`: {e}")))?;
                if view.dtype() != Dtype::F32 || view.data().len() != shard.count * per * 4 {
                    return Err(file_err(
                        &file,
                        format!(
                            "tensor `{name}` has {:?} {:?}; the manifest expects f32 with {} samples",
                            view.dtype(),
                            view.shape(),
                            shard.count
                        ),
                    ));
                }
                out.extend(
                    view.data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
                );
            }
        }
        if mean.len() != n * l || context.len() != n * t || manifest.labels.len() != n {
            return Err(file_err(
                &path,
                format!(
                    "the shards hold {} latents and {} embeddings; the manifest lists {n} captions",
                    mean.len() / l.max(1),
                    context.len() / t.max(1)
                ),
            ));
        }
        Ok(Self {
            manifest,
            mean,
            logvar,
            context,
        })
    }
}
