//! The proxy-quality evaluation of one candidate U-Net: train it briefly with the seed's recipe
//! on cached latents of a captioned dataset, sample a fixed set of prompts and noise seeds with
//! DDIM (trailing spacing) and classifier-free guidance, decode with the dataset's small VAE,
//! and compare the decoded images with real ones in the declared feature space (Fréchet
//! distance, KID, prompt adherence). Every number is labelled with its extractor and sample
//! count; it is called FID only with Inception-v3 features (`features = "inception:FILE"`).

//!
//! One concept per file: [`config`] (the `[quality]` settings), `prepare` (dataset, small
//! VAE, latents, text embeddings, extractor, teacher; `cache` and `prepared` hold the cache
//! folder and the shipped copy of it), `train` (training a candidate), `sample` (sampling and
//! scoring images), `evaluate` (the whole evaluation and its memo).

use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::BackendTypes;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use unas_runtime::device::Cpu;
use unas_runtime::pipeline::{denoise, seeded_noise, Guidance};
use unas_runtime::scheduler::{SchedulerConfig, SchedulerKind};
use unas_runtime::vae::AutoencoderKL;
use unas_runtime::{RoleWeights, UNet2DConditionModel};
use unas_space::rng::Rng;
use unas_space::UNetArch;

use super::caption_encoder::CaptionEncoder;
use super::data::fashion_mnist::{self, FashionMnist};
use super::data::folder::ImageFolder;
use super::data::shapes::Shapes;
use super::data::Dataset;
use super::features::{accuracy, FeatureExtractor, FeatureTraining};
use super::hash::{sha16, sha256_hex};
use super::inception::InceptionFid;
use super::latent_cache::{LatentCache, Manifest};
use super::metrics::{frechet_distance, kid, Features, GaussianStats, Kid};
use super::module_file::{load_module, save_module};
use super::pipeline_data::{self, PipelineEncoders};
use super::small_vae::{image_batch, load_vae, save_vae, train_vae, VaeTraining};
use super::supernet::{draw_batch, TrainData};
use super::train::{init_seeded, train_observed, LrSchedule, Recipe};
use super::val_loss::{ValLoss, ValidationSet};
use crate::EvalError;

mod cache;
pub mod config;
mod evaluate;
mod prepare;
mod prepared;
mod sample;
mod timing;
mod train;

use cache::{build_cache, CacheKey, FeatureTrainingKey};
use config::config_err;
pub use config::{Objective, ProxyConfig};
pub use evaluate::ProxyScore;
use prepared::copy_prepared;

/// Tokens per caption of the proxy's text encoder (the tiny space's latency setting).
pub const TEXT_LEN: usize = 16;

/// Images of the built-in dataset that exist (training images, reference images and the
/// extractor's data are drawn from them).
const BUILTIN_LEN: usize = 10_000;

/// Cache format version: bump when anything cached changes meaning.
const CACHE_VERSION: u32 = 1;

/// The prepared, shared part of the proxy: latents, text embeddings, VAE, feature extractor,
/// the real images' feature statistics, and the fixed prompts and noise.
pub struct Proxy {
    cfg: ProxyConfig,
    cache: LatentCache,
    cache_dir: PathBuf,
    vae: AutoencoderKL<Cpu>,
    extractor: Option<FeatureExtractor>,
    /// Boxed: the Inception module is ~140 KB inline, and `Proxy` values move around.
    inception: Option<Box<InceptionFid>>,
    reference: Features,
    reference_stats: GaussianStats,
    uncond: Vec<f32>,
    prompts: Vec<usize>,
    /// The dataset's attribute names (prompt adherence is per attribute).
    attributes: Vec<String>,
    teacher: Option<Teacher>,
}

/// The prepared teacher of weight inheritance.
struct Teacher {
    /// `name x steps`, for labels.
    label: String,
    weights: RoleWeights,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("cache_dir", &self.cache_dir)
            .field("describe", &self.describe())
            .finish()
    }
}

/// The default cache root: `$UNAS_CACHE_DIR`, else `$XDG_CACHE_HOME/unas`, else
/// `$HOME/.cache/unas`, else `.unas-cache`.
pub fn default_cache_root() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("UNAS_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|p| p.join("unas")))
        .or_else(|| env("HOME").map(|p| p.join(".cache").join("unas")))
        .unwrap_or_else(|| PathBuf::from(".unas-cache"))
}

/// Opens the dataset named by `spec` (`builtin`, `fashion-mnist` or a folder).
pub fn open_dataset(spec: &str, size: usize, seed: u64) -> Result<Box<dyn Dataset>, EvalError> {
    Ok(match spec {
        "builtin" | "shapes" => Box::new(Shapes::new(seed, BUILTIN_LEN, size)),
        "fashion-mnist" => Box::new(FashionMnist::load(
            std::path::Path::new(fashion_mnist::DEBIAN_DIR),
            true,
            size,
        )?),
        dir => Box::new(ImageFolder::open(std::path::Path::new(dir), size)?),
    })
}

fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Proxy {
    /// One line saying what the score is.
    pub fn describe(&self) -> String {
        format!(
            "proxy {} on {} ({} train steps x batch {}, {} samples, {} DDIM steps, guidance {}{})",
            if self.inception.is_some() {
                "FID"
            } else {
                "FD"
            },
            self.extractor_name(),
            self.cfg.steps,
            self.cfg.batch,
            self.cfg.samples,
            self.cfg.sampling_steps,
            self.cfg.guidance,
            self.teacher_note()
        )
    }

    /// `; inherits from TEACHER x STEPS` when candidates start from a teacher, else empty.
    fn teacher_note(&self) -> String {
        self.teacher.as_ref().map_or(String::new(), |t| {
            format!("; inherits by role from {}", t.label)
        })
    }

    /// Name of the extractor the score uses.
    pub fn extractor_name(&self) -> String {
        match (&self.inception, &self.extractor) {
            (Some(inc), _) => inc.name().to_string(),
            (None, Some(net)) => net.name().to_string(),
            (None, None) => "none".into(),
        }
    }

    /// The cache folder in use.
    pub fn cache_dir(&self) -> &std::path::Path {
        &self.cache_dir
    }

    /// The settings.
    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// The latent cache (latent posteriors and caption embeddings).
    pub fn cache(&self) -> &LatentCache {
        &self.cache
    }

    /// The data's small VAE (its latents, divided by the cache's `scaling_factor`, are what the
    /// U-Nets denoise).
    pub fn vae(&self) -> &AutoencoderKL<Cpu> {
        &self.vae
    }

    /// The frozen caption encoder that embedded the cache's captions, rebuilt (it is a
    /// deterministic function of the captions, the text width and `data_seed`).
    pub fn caption_encoder(&self) -> CaptionEncoder {
        CaptionEncoder::new(
            self.cache.manifest.captions.iter().map(String::as_str),
            self.cache.manifest.text[1],
            TEXT_LEN,
            self.cfg.data_seed,
        )
    }

    /// The empty caption's embedding `[text_len, text_dim]`.
    pub fn uncond(&self) -> &[f32] {
        &self.uncond
    }

    /// Cached items trained on: all but the last `val_items` (the held-out validation items).
    pub fn train_items(&self) -> usize {
        self.cache.len().saturating_sub(self.cfg.val_items).max(1)
    }

    /// The frozen validation set: the held-out latents × `val_bands` stratified timesteps ×
    /// fixed noise, all from `data_seed` (common random numbers for every candidate).
    pub fn validation_set(&self) -> ValidationSet {
        let held_out: Vec<usize> = (self.train_items()..self.cache.len()).collect();
        ValidationSet::new(
            &self.cache,
            &held_out,
            self.cfg.val_bands,
            self.cfg.recipe.timesteps,
            self.cfg.data_seed,
        )
    }

    /// The identity of the prepared data (cache key, latents, held-out split): what a
    /// supernet trained on it records, and what scoring with it must match.
    pub fn describe_data(&self) -> String {
        format!(
            "{} ({} latents {:?}, text {:?}, last {} held out)",
            self.cache_dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().to_string()),
            self.cache.len(),
            self.cache.manifest.latent,
            self.cache.manifest.text,
            self.cache.len() - self.train_items()
        )
    }

    /// Checks that `arch` fits the prepared data (latent channels, text width, latent side).
    pub fn check_arch(&self, arch: &UNetArch) -> Result<(), EvalError> {
        let [c, h, _] = self.cache.manifest.latent;
        let [_, dim] = self.cache.manifest.text;
        let st = &arch.stem;
        if st.in_channels != c || st.out_channels != c {
            return Err(EvalError::Unsupported(format!(
                "arch `{}` has {} in / {} out channels; the proxy's latents have {c}",
                arch.name, st.in_channels, st.out_channels
            )));
        }
        if st.cross_attention_dim != dim {
            return Err(EvalError::Unsupported(format!(
                "arch `{}` has cross_attention_dim {}; the proxy was prepared for {dim}",
                arch.name, st.cross_attention_dim
            )));
        }
        let plan = arch.plan()?;
        if !h.is_multiple_of(plan.max_div) {
            return Err(EvalError::Unsupported(format!(
                "arch `{}` needs a latent side divisible by {}; the proxy's latents are {h}x{h}",
                arch.name, plan.max_div
            )));
        }
        Ok(())
    }
}

/// Images denoised together when sampling.
const SAMPLE_CHUNK: usize = 64;

type Train = burn::backend::Autodiff<Cpu>;

/// Rows per forward when scoring the validation set (part of the score's arithmetic: fixed).
pub const VAL_BATCH: usize = 64;
