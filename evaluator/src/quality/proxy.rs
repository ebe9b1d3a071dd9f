//! The proxy-quality evaluation of one candidate U-Net: train it briefly with the seed's recipe
//! on cached latents of a captioned dataset, sample a fixed set of prompts and noise seeds with
//! DDIM (trailing spacing) and classifier-free guidance, decode with the dataset's small VAE,
//! and compare the decoded images with real ones in the declared feature space (Fréchet
//! distance, KID, prompt adherence). Every number is labelled with its extractor and sample
//! count; it is called FID only with Inception-v3 features (`features = "inception:FILE"`).

use std::path::PathBuf;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::BackendTypes;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use unas_runtime::device::Cpu;
use unas_runtime::pipeline::{denoise, seeded_noise, Guidance};
use unas_runtime::scheduler::{
    BetaSchedule, PredictionType, SchedulerConfig, SchedulerKind, TimestepSpacing,
};
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
use super::inception::InceptionFid;
use super::latent_cache::{LatentCache, Manifest};
use super::metrics::{frechet_distance, kid, Features, GaussianStats, Kid};
use super::module_file::{load_module, save_module};
use super::pipeline_data::{self, PipelineEncoders};
use super::small_vae::{image_batch, load_vae, save_vae, train_vae, VaeTraining};
use super::supernet::{draw_batch, TrainData};
use super::train::{init_seeded, train_observed, Betas, LrSchedule, Prediction, Recipe};
use super::val_loss::{ValLoss, ValidationSet};
use crate::EvalError;

/// Settings of the proxy evaluation (the `[quality]` table of a study file).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Dataset: `builtin` (procedural shapes), `fashion-mnist` (Debian's
    /// `dataset-fashion-mnist`) or a folder of captioned images (default `builtin`).
    #[serde(default = "default_data")]
    pub data: String,
    /// Images of the dataset used for training and as the real reference (default 2000).
    #[serde(default = "default_images")]
    pub images: usize,
    /// Image side in pixels (default 32; the small VAE halves it, so latents are 16x16).
    #[serde(default = "default_image_size")]
    pub image_size: usize,
    /// The last `val_items` cached latents are held out of every training run (candidates,
    /// teacher, supernets) and form the frozen validation set (default 256).
    #[serde(default = "default_val_items")]
    pub val_items: usize,
    /// Timestep bands of the validation set: each held-out latent is scored at one timestep
    /// drawn inside each of `val_bands` equal bands of the schedule (default 8).
    #[serde(default = "default_val_bands")]
    pub val_bands: usize,
    /// Training steps per candidate (default 60).
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Training batch (default 16).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Training recipe (default: DeciDiffusion's — cosine betas, v-prediction, zero terminal
    /// SNR, Min-SNR-5, EMA over the last 50 % of the steps; an EMA window shorter than
    /// [`MIN_EMA_WINDOW`](super::train::MIN_EMA_WINDOW) steps is refused, so the default needs
    /// at least 19 steps: set `recipe.ema_fraction = 0` for shorter runs).
    #[serde(default)]
    pub recipe: Recipe,
    /// Share of training captions replaced by the empty caption, so that classifier-free
    /// guidance works (default 0.1).
    #[serde(default = "default_cond_dropout")]
    pub cond_dropout: f64,
    /// Images sampled per candidate (default 128).
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// DDIM steps when sampling (default 10).
    #[serde(default = "default_sampling_steps")]
    pub sampling_steps: usize,
    /// Classifier-free guidance scale (default 3.0; 1.0 = no guidance).
    #[serde(default = "default_guidance")]
    pub guidance: f64,
    /// Seed of the dataset, the VAE, the text encoder, the extractor, the prompts and the
    /// sampling noise: shared by all candidates (default 0). The evaluation seed passed to
    /// [`Proxy::evaluate`] drives the initialisation and the training draws (latent samples,
    /// caption dropout, timesteps, noise); a study passes the same one to all its candidates.
    #[serde(default)]
    pub data_seed: u64,
    /// Training steps of the dataset's small VAE (default 300; trained once, then cached).
    #[serde(default = "default_vae_steps")]
    pub vae_steps: usize,
    /// Images the feature extractor is trained on (default 4000; fewer when the dataset is
    /// smaller).
    #[serde(default = "default_extractor_images")]
    pub extractor_images: usize,
    /// Passes of the feature extractor over its images (default 3).
    #[serde(default = "default_extractor_epochs")]
    pub extractor_epochs: usize,
    /// Feature extractor of the score: `featurenet` (default: the small CNN trained on the
    /// dataset's attribute labels; needs a dataset with attributes) or `inception:FILE`
    /// (Inception-v3 pool3 with pytorch-fid key names, user-supplied, clean-fid preprocessing:
    /// only this score is called FID).
    #[serde(default = "default_features")]
    pub features: String,
    /// Teacher U-Net for weight inheritance: a preset of the space (e.g. `tiny`) or a unas TOML
    /// file. It is trained once for `teacher_steps` steps with the proxy's recipe and data
    /// (cached), and every candidate then starts from the teacher's weights where the module
    /// paths match (the leading sub-tensor where the candidate is narrower) instead of a random
    /// initialisation. Default: none (candidates train from scratch).
    #[serde(default)]
    pub teacher: Option<String>,
    /// Training steps of the teacher (default 1000; only used with `teacher`).
    #[serde(default = "default_teacher_steps")]
    pub teacher_steps: usize,
    /// Cache folder for the trained VAE, latents, text embeddings and the feature extractor
    /// (default: `$UNAS_CACHE_DIR`, else `$XDG_CACHE_HOME/unas`, else `~/.cache/unas`).
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// What a study minimises: `fd` (default: each candidate trained `steps` steps from the
    /// evaluation seed, sampled, Fréchet distance on the extractor's features),
    /// `supernet-val-loss` (the candidate's validation loss with weights inherited from its
    /// topology's trained supernet, from `supernets`) or `supernet-finetune` (the same after
    /// `finetune_steps` steps of training from the inherited weights, with the same batches,
    /// timesteps and noise for every candidate); see docs/supernet.md.
    #[serde(default)]
    pub objective: Objective,
    /// Folder of trained supernets (`unas supernet train --out DIR`), needed by the supernet
    /// objectives; relative paths are read from the working directory.
    #[serde(default)]
    pub supernets: Option<PathBuf>,
    /// Fine-tuning steps of `objective = "supernet-finetune"` (default 50, the calibrated
    /// setting of docs/calibration/).
    #[serde(default = "default_finetune_steps")]
    pub finetune_steps: usize,
    /// A folder of prepared proxy data (`proxy-HASH/` folders as the cache holds them, e.g.
    /// `configs/data`): when the cache has no folder for these settings but this one does, it
    /// is checked (its recorded settings key and `SHA256SUMS`) and copied into the cache
    /// instead of training the VAE and extractor again — so that supernets shipped beside it
    /// see the latents they were trained on. Relative paths are read from the working
    /// directory. Default: none.
    #[serde(default)]
    pub prepared: Option<PathBuf>,
    /// A diffusers pipeline folder (`vae/`, `text_encoder/`, `tokenizer/`) whose own VAE and
    /// text encoder prepare the data — latents in its latent space, its CLIP's caption
    /// embeddings (its tokenizer's length, e.g. 77 × 768 for SD1.5) — instead of the small VAE
    /// and the frozen caption encoder, so that its U-Net can teach (`unas train --teacher`
    /// the same folder). Candidates need its text width as `cross_attention_dim`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PathBuf>,
    /// A calibration summary (`summary.csv` of `unas quality calibrate`) whose row for this
    /// objective the study's report quotes (τ against the ground truth, its CI, ICC, the
    /// ground truth's noise ceiling, the targets met or missed); relative paths are read from
    /// the working directory. Default: none (the report says the objective is uncalibrated).
    #[serde(default)]
    pub calibration: Option<PathBuf>,
}

/// The number a study minimises (see [`ProxyConfig::objective`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Objective {
    /// Fréchet distance of samples of a briefly trained candidate.
    #[default]
    Fd,
    /// Validation loss with weights inherited from a trained supernet.
    SupernetValLoss,
    /// Validation loss after a short fine-tune from the inherited weights.
    SupernetFinetune,
}

impl Objective {
    /// The objective's name in calibration tables (`proxy` column of `summary.csv`):
    /// `supernet-val-loss`, `supernet-finetune@K` (K = `finetune_steps`), `fd`.
    pub fn calibration_name(self, finetune_steps: usize) -> String {
        match self {
            Self::Fd => "fd".into(),
            Self::SupernetValLoss => "supernet-val-loss".into(),
            Self::SupernetFinetune => format!("supernet-finetune@{finetune_steps}"),
        }
    }

    /// Whether the objective scores candidates on trained supernets.
    pub fn uses_supernets(self) -> bool {
        matches!(self, Self::SupernetValLoss | Self::SupernetFinetune)
    }
}

fn default_data() -> String {
    "builtin".into()
}
fn default_images() -> usize {
    2000
}
fn default_val_items() -> usize {
    256
}
fn default_val_bands() -> usize {
    8
}
fn default_image_size() -> usize {
    32
}
fn default_steps() -> usize {
    60
}
fn default_batch() -> usize {
    16
}
fn default_cond_dropout() -> f64 {
    0.1
}
fn default_samples() -> usize {
    128
}
fn default_sampling_steps() -> usize {
    10
}
fn default_features() -> String {
    "featurenet".into()
}
fn default_extractor_images() -> usize {
    4000
}
fn default_extractor_epochs() -> usize {
    3
}
fn default_vae_steps() -> usize {
    300
}
fn default_finetune_steps() -> usize {
    50
}
fn default_teacher_steps() -> usize {
    1000
}
fn default_guidance() -> f64 {
    3.0
}

impl Default for ProxyConfig {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

/// The result of one proxy evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProxyScore {
    /// Fréchet distance between generated and real images in the extractor's feature space
    /// (the score that is minimised).
    pub fd: f64,
    /// KID (unbiased MMD², cubic kernel), mean over subsets.
    pub kid: f64,
    /// Standard deviation of KID over the subsets.
    pub kid_std: f64,
    /// Mean prompt adherence over the dataset's attributes (share of generated images whose
    /// predicted attribute equals the prompted one), in [0, 1].
    pub adherence: f64,
    /// Mean training loss over the last 10 % of the steps.
    pub final_loss: f64,
    /// Training wall time in seconds.
    pub train_seconds: f64,
    /// Sampling, decoding and scoring wall time in seconds.
    pub sample_seconds: f64,
    /// Generated images scored.
    pub samples: usize,
    /// Label of the score: `fd[featurenet[shapes(...)...]; 128 samples; 10 DDIM steps]`.
    pub metric: String,
}

/// Copies a shipped prepared-data folder `src` to the cache folder `dst` after checking that
/// its manifest records the settings key `key_json` and that every file matches `SHA256SUMS`
/// (`<hex>  <file>` lines); written beside `dst` and renamed, so a reader never sees half.
fn copy_prepared(
    src: &std::path::Path,
    dst: &std::path::Path,
    key_json: &str,
) -> Result<(), EvalError> {
    use sha2::{Digest, Sha256};
    let file_err = |file: &std::path::Path, message: String| EvalError::File {
        file: file.to_path_buf(),
        message,
    };
    let manifest = src.join("manifest.json");
    let text =
        std::fs::read_to_string(&manifest).map_err(|e| file_err(&manifest, e.to_string()))?;
    let m: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| file_err(&manifest, e.to_string()))?;
    let want: serde_json::Value = serde_json::from_str(key_json).expect("valid key");
    if m["provenance"]["key"] != want {
        return Err(file_err(
            &manifest,
            "provenance.key: prepared for other settings than these".into(),
        ));
    }
    let sums = src.join("SHA256SUMS");
    let listing = std::fs::read_to_string(&sums).map_err(|e| file_err(&sums, e.to_string()))?;
    let tmp = dst.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| file_err(&tmp, e.to_string()))?;
    for line in listing.lines().filter(|l| !l.trim().is_empty()) {
        let (hex, name) = line
            .split_once("  ")
            .ok_or_else(|| file_err(&sums, format!("bad line `{line}`")))?;
        if name.contains('/') || name.starts_with('.') {
            return Err(file_err(&sums, format!("bad file name `{name}`")));
        }
        let file = src.join(name);
        let bytes = std::fs::read(&file).map_err(|e| file_err(&file, e.to_string()))?;
        let got: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != hex {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(file_err(
                &file,
                format!("SHA-256 {got}, SHA256SUMS says {hex}"),
            ));
        }
        let out = tmp.join(name);
        std::fs::write(&out, &bytes).map_err(|e| file_err(&out, e.to_string()))?;
    }
    if !tmp.join("manifest.json").exists() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(file_err(&sums, "does not list manifest.json".into()));
    }
    match std::fs::rename(&tmp, dst) {
        Ok(()) => Ok(()),
        // Another process copied the same verified files first (two commands started
        // together on one cache): theirs is as good as ours.
        Err(_) if dst.join("manifest.json").exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(file_err(dst, e.to_string()))
        }
    }
}

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

fn config_err(field: &str, message: impl std::fmt::Display) -> EvalError {
    EvalError::Unsupported(format!("quality.{field}: {message}"))
}

impl ProxyConfig {
    /// Checks value ranges; errors name the `quality.` field.
    pub fn check(&self) -> Result<(), EvalError> {
        let positive = [
            ("images", self.images),
            ("steps", self.steps),
            ("batch", self.batch),
            ("samples", self.samples),
            ("sampling_steps", self.sampling_steps),
            ("vae_steps", self.vae_steps),
            ("extractor_images", self.extractor_images),
            ("extractor_epochs", self.extractor_epochs),
            ("teacher_steps", self.teacher_steps),
            ("val_items", self.val_items),
            ("val_bands", self.val_bands),
            ("finetune_steps", self.finetune_steps),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(config_err(field, "must be at least 1"));
            }
        }
        if self.objective.uses_supernets() && self.supernets.is_none() {
            return Err(config_err(
                "supernets",
                "the supernet objectives need `supernets = \"DIR\"` (a folder of \
                 `unas supernet train` outputs)",
            ));
        }
        if self.objective == Objective::SupernetFinetune {
            self.recipe
                .ema_window(self.finetune_steps)
                .map_err(|m| config_err("finetune_steps", m))?;
        }
        if self.val_items >= self.images {
            return Err(config_err(
                "val_items",
                format!(
                    "{} held-out latents leave none of the {} images to train on",
                    self.val_items, self.images
                ),
            ));
        }
        if self.samples < 2 {
            return Err(config_err(
                "samples",
                "needs at least 2 images for statistics",
            ));
        }
        if self.image_size < 8 || !self.image_size.is_multiple_of(2) {
            return Err(config_err("image_size", "must be an even number ≥ 8"));
        }
        if self.features != "featurenet" && !self.features.starts_with("inception:") {
            return Err(config_err(
                "features",
                format!("`{}`: expected featurenet or inception:FILE", self.features),
            ));
        }
        if !(0.0..1.0).contains(&self.cond_dropout) {
            return Err(config_err("cond_dropout", "must be in [0, 1)"));
        }
        if !(self.guidance >= 1.0 && self.guidance.is_finite()) {
            return Err(config_err("guidance", "must be ≥ 1 (1 = no guidance)"));
        }
        if !(self.recipe.lr > 0.0 && self.recipe.lr.is_finite()) {
            return Err(config_err("recipe.lr", "must be positive"));
        }
        if self.recipe.timesteps < 2 {
            return Err(config_err("recipe.timesteps", "must be at least 2"));
        }
        if let Some(m) = self.recipe.max_grad_norm {
            if !(m > 0.0 && m.is_finite()) {
                return Err(config_err("recipe.max_grad_norm", "must be positive"));
            }
        }
        if self.recipe.warmup_steps > 0 && self.recipe.lr_schedule == LrSchedule::Constant {
            return Err(config_err(
                "recipe.warmup_steps",
                "needs lr_schedule = \"cosine\" (a constant rate has no warm-up)",
            ));
        }
        // The EMA must average a real window of every run the settings train: the candidates'
        // and, with weight inheritance, the teacher's.
        self.recipe
            .ema_window(self.steps)
            .map_err(|m| config_err("recipe.ema_fraction", m))?;
        if self.teacher.is_some() {
            self.recipe
                .ema_window(self.teacher_steps)
                .map_err(|m| config_err("recipe.ema_fraction", format!("teacher: {m}")))?;
        }
        Ok(())
    }

    /// The DDIM sampler of this recipe: the training schedule, trailing timestep spacing (no
    /// step 0), the recipe's prediction type and zero-terminal-SNR rescaling.
    pub fn scheduler_config(&self) -> SchedulerConfig {
        let r = &self.recipe;
        SchedulerConfig {
            num_train_timesteps: r.timesteps,
            beta_start: 0.00085,
            beta_end: 0.012,
            beta_schedule: match r.betas {
                Betas::ScaledLinear => BetaSchedule::ScaledLinear,
                Betas::Cosine => BetaSchedule::SquaredCosCapV2,
            },
            prediction_type: match r.prediction {
                Prediction::Epsilon => PredictionType::Epsilon,
                Prediction::V => PredictionType::VPrediction,
            },
            rescale_betas_zero_snr: r.zero_terminal_snr,
            timestep_spacing: Some(TimestepSpacing::Trailing),
            set_alpha_to_one: false,
            clip_sample: false,
            ..SchedulerConfig::default()
        }
    }
}

/// What identifies a cache folder: everything that changes its content.
#[derive(Serialize)]
struct CacheKey<'a> {
    version: u32,
    dataset: String,
    images: usize,
    image_size: usize,
    text: [usize; 2],
    seed: u64,
    vae: &'a VaeTraining,
    features: FeatureTrainingKey,
    /// The encoding pipeline (`quality.pipeline`), absent from keys without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pipeline: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct FeatureTrainingKey {
    images: usize,
    epochs: usize,
    batch: usize,
    lr: f64,
    seed: u64,
}

fn sha16(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Proxy {
    /// Prepares the shared data for candidates with cross-attention width
    /// `cross_attention_dim`: opens the dataset, and trains/encodes (or loads from the cache)
    /// the small VAE, the latents, the text embeddings and the feature extractor. `progress`
    /// receives one line per stage.
    pub fn prepare(
        cfg: &ProxyConfig,
        cross_attention_dim: usize,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self, EvalError> {
        cfg.check()?;
        // The teacher's spec is checked before any data is prepared.
        let teacher = match &cfg.teacher {
            Some(spec) => Some((
                spec.as_str(),
                unas_space::load_arch(spec).map_err(|e| config_err("teacher", e))?,
            )),
            None => None,
        };
        let ds = open_dataset(&cfg.data, cfg.image_size, cfg.data_seed)?;
        if ds.len() < 2 {
            return Err(config_err(
                "data",
                format!(
                    "{} has {} image(s); at least 2 are needed",
                    ds.name(),
                    ds.len()
                ),
            ));
        }
        let images = cfg.images.min(ds.len());
        let encoders = match &cfg.pipeline {
            None => None,
            Some(dir) => {
                progress(&format!(
                    "loading the VAE and text encoder of {}",
                    dir.display()
                ));
                let enc = PipelineEncoders::load(dir)?;
                let [_, width] = enc.text_shape();
                if width != cross_attention_dim {
                    return Err(config_err(
                        "pipeline",
                        format!(
                            "{}: its text encoder is {width} wide; the candidates' \
                             cross_attention_dim is {cross_attention_dim}",
                            dir.display()
                        ),
                    ));
                }
                let f = enc.vae_config.downscale();
                if !cfg.image_size.is_multiple_of(f) {
                    return Err(config_err(
                        "image_size",
                        format!(
                            "{} is not a multiple of {f}, the downsampling of {}'s VAE",
                            cfg.image_size,
                            dir.display()
                        ),
                    ));
                }
                Some(enc)
            }
        };
        let vae_training = VaeTraining {
            seed: cfg.data_seed,
            steps: cfg.vae_steps,
            ..VaeTraining::default()
        };
        let feature_training = FeatureTraining {
            images: ds.len().min(cfg.extractor_images),
            epochs: cfg.extractor_epochs,
            seed: cfg.data_seed,
            ..FeatureTraining::default()
        };
        let key = CacheKey {
            version: CACHE_VERSION,
            dataset: ds.name(),
            images,
            image_size: cfg.image_size,
            text: encoders.as_ref().map_or(
                [TEXT_LEN, cross_attention_dim],
                PipelineEncoders::text_shape,
            ),
            seed: cfg.data_seed,
            vae: &vae_training,
            features: FeatureTrainingKey {
                images: feature_training.images,
                epochs: feature_training.epochs,
                batch: feature_training.batch,
                lr: feature_training.lr,
                seed: feature_training.seed,
            },
            pipeline: cfg
                .pipeline
                .as_deref()
                .map(pipeline_data::cache_key)
                .transpose()?,
        };
        let key_json = serde_json::to_string(&key).expect("serialisable");
        let root = cfg.cache_dir.clone().unwrap_or_else(default_cache_root);
        let dir = root.join(format!("proxy-{}", sha16(&key_json)));
        let extractor_name = format!(
            "featurenet[{}; {} images x {} epochs, seed {}]",
            ds.name(),
            feature_training.images,
            feature_training.epochs,
            feature_training.seed
        );
        if let Some(p) = cfg.prepared.as_ref().filter(|p| !p.is_dir()) {
            // A missing folder would silently train a VAE and extractor of its own: other
            // latents than those the shipped supernets were trained on.
            return Err(EvalError::File {
                file: p.clone(),
                message: "quality.prepared: no such folder (relative paths are read from the \
                          working directory)"
                    .into(),
            });
        }
        let shipped = cfg
            .prepared
            .as_ref()
            .map(|p| p.join(dir.file_name().expect("named")))
            .filter(|p| p.join("manifest.json").exists());
        if let (false, Some(src)) = (dir.join("manifest.json").exists(), &shipped) {
            progress(&format!("copying prepared data from {}", src.display()));
            copy_prepared(src, &dir, &key_json)?;
        }
        if !dir.join("manifest.json").exists() {
            build_cache(
                &*ds,
                images,
                cross_attention_dim,
                &vae_training,
                encoders.as_ref(),
                &feature_training,
                &key_json,
                &dir,
                progress,
            )?;
        } else {
            progress(&format!("using cached data in {}", dir.display()));
        }
        let cache = LatentCache::load(&dir)?;
        let vae = match &encoders {
            Some(enc) => enc.vae.clone(),
            None => load_vae(&dir.join("vae.mpk"))?,
        };
        let net_file = dir.join("featurenet.mpk");
        let extractor = if net_file.exists() {
            Some(FeatureExtractor::load(&net_file, &*ds, extractor_name)?)
        } else {
            None
        };
        let inception = match cfg.features.strip_prefix("inception:") {
            Some(file) => {
                progress(&format!("loading Inception-v3 weights from {file}"));
                Some(Box::new(InceptionFid::load(std::path::Path::new(file))?))
            }
            None if extractor.is_none() => {
                return Err(config_err(
                    "features",
                    format!(
                        "{} has no attribute labels to train the featurenet extractor on; \
                         use features = \"inception:FILE\" with Inception-v3 weights",
                        ds.name()
                    ),
                ))
            }
            None => None,
        };
        let uncond = match &encoders {
            Some(enc) => enc.encode_captions(&[String::new()]),
            None => CaptionEncoder::new(
                cache.manifest.captions.iter().map(String::as_str),
                cross_attention_dim,
                TEXT_LEN,
                cfg.data_seed,
            )
            .encode(&[String::new()]),
        };
        // Real reference: the decoded-space images the candidates imitate.
        let reference_images: Vec<Vec<f32>> = (0..images)
            .map(|i| ds.get(i).map(|s| s.pixels))
            .collect::<Result<_, _>>()?;
        let reference = match (&inception, &extractor) {
            (Some(inc), _) => inc.features(&reference_images, cfg.image_size)?,
            (None, Some(net)) => net.features(&reference_images, cfg.image_size)?,
            (None, None) => unreachable!("checked above"),
        };
        let reference_stats = reference.stats()?;
        // Fixed prompts: captions of samples drawn once from the data seed.
        let mut rng = Rng::seed(cfg.data_seed ^ 0x7072_6f6d_7074);
        let prompts = (0..cfg.samples).map(|_| rng.below(images)).collect();
        let mut proxy = Self {
            cfg: cfg.clone(),
            cache,
            cache_dir: dir,
            vae,
            extractor,
            inception,
            reference,
            reference_stats,
            uncond,
            prompts,
            attributes: ds.attributes().iter().map(|a| a.name.clone()).collect(),
            teacher: None,
        };
        if let Some((spec, arch)) = teacher {
            proxy.teacher = Some(proxy.prepare_teacher(spec, &arch, progress)?);
        }
        Ok(proxy)
    }

    /// Loads the teacher `spec` (`arch`) trained for `teacher_steps` from the cache, or trains and
    /// caches it.
    fn prepare_teacher(
        &self,
        spec: &str,
        arch: &UNetArch,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Teacher, EvalError> {
        self.check_arch(arch)
            .map_err(|e| config_err("teacher", e))?;
        let steps = self.cfg.teacher_steps;
        let key = serde_json::json!({
            "arch": arch.hash_id(),
            "steps": steps,
            "batch": self.cfg.batch,
            "recipe": self.cfg.recipe,
            "cond_dropout": self.cfg.cond_dropout,
            "seed": self.cfg.data_seed,
            "version": CACHE_VERSION,
        });
        let file = self
            .cache_dir
            .join(format!("teacher-{}.mpk", sha16(&key.to_string())));
        let unet = if file.exists() {
            progress(&format!("using cached teacher {}", file.display()));
            let device = Default::default();
            load_module(
                UNet2DConditionModel::<Cpu>::from_plan(arch, &arch.plan()?, &device),
                &file,
            )?
        } else {
            progress(&format!(
                "training the teacher `{spec}` for {steps} steps (once; cached)"
            ));
            let t0 = Instant::now();
            let mut last = 0;
            let (unet, loss) = self.train(arch, self.cfg.data_seed, steps, &mut |step, _| {
                if step * 10 / steps > last {
                    last = step * 10 / steps;
                    progress(&format!("teacher: step {step}/{steps}"));
                }
            })?;
            // Written beside its place, then renamed: never a half-written teacher.
            let tmp = self
                .cache_dir
                .join(format!(".teacher-{}.mpk", std::process::id()));
            save_module(&unet, &tmp)?;
            std::fs::rename(&tmp, &file).map_err(|e| io_err(&file, e))?;
            progress(&format!(
                "teacher trained in {:.0} s (final loss {loss:.4})",
                t0.elapsed().as_secs_f64()
            ));
            unet
        };
        Ok(Teacher {
            label: format!("{spec} x {steps}"),
            weights: RoleWeights::from_unet(arch, &unet)?,
        })
    }

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

    /// Trains `arch` from an initialisation seeded with `seed` and returns the trained model
    /// and the mean loss over the last 10 % of the steps. Every training draw (latent indices
    /// and samples, caption dropout, timesteps, noise) comes from one stream seeded with `seed`
    /// alone, and its number per step depends only on the batch, the latent shape and the
    /// cache, never on the arch: candidates trained with the same seed see the same data,
    /// timesteps and noise (common random numbers).
    pub fn train(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
        progress: &mut dyn FnMut(usize, f32),
    ) -> Result<(UNet2DConditionModel<Cpu>, f64), EvalError> {
        self.train_observed(arch, seed, steps, &mut |step, loss, _| progress(step, loss))
    }

    /// [`Proxy::train`], with `observe(steps done, loss, current weights)` after every step.
    pub fn train_observed(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
        observe: &mut dyn FnMut(usize, f32, &UNet2DConditionModel<Train>),
    ) -> Result<(UNet2DConditionModel<Cpu>, f64), EvalError> {
        self.check_arch(arch)?;
        let device = Default::default();
        let plan = arch.plan()?;
        let mut unet = init_seeded::<Train, _>(&device, seed, || {
            UNet2DConditionModel::<Train>::from_plan(arch, &plan, &device)
        });
        if let Some(teacher) = &self.teacher {
            unet = teacher.weights.inherit(arch, unet)?.0;
        }
        self.train_from(unet, seed, steps, observe)
    }

    /// Fine-tunes `start` (e.g. a candidate's weights inherited from a supernet) for `steps`
    /// steps with the proxy's recipe; the batches, timesteps and noise come from `seed` alone,
    /// so every candidate sees the same ones (common random numbers). Returns the validation
    /// loss of the result (the EMA, when the recipe keeps one).
    pub fn finetune(
        &self,
        arch: &UNetArch,
        start: UNet2DConditionModel<Cpu>,
        seed: u64,
        steps: usize,
        val: &ValidationSet,
    ) -> Result<ValLoss, EvalError> {
        let model = self.finetuned_model(arch, start, seed, steps)?;
        let device: <Cpu as BackendTypes>::Device = Default::default();
        Ok(
            val.loss::<Cpu>(&self.cfg.recipe, VAL_BATCH, &device, &|x, t, c| {
                model.forward(x, t, c)
            }),
        )
    }

    /// The weights [`Self::finetune`] scores: `start` trained `steps` steps with batches,
    /// timesteps and noise from `seed`.
    pub fn finetuned_model(
        &self,
        arch: &UNetArch,
        start: UNet2DConditionModel<Cpu>,
        seed: u64,
        steps: usize,
    ) -> Result<UNet2DConditionModel<Cpu>, EvalError> {
        self.check_arch(arch)?;
        // `from_inner` keeps each parameter's `require_grad` flag, which a module built on the
        // inner backend may not set (then nothing would train): set it on every parameter.
        struct Trainable;
        impl burn::module::ModuleMapper<Train> for Trainable {
            fn map_float<const D: usize>(
                &mut self,
                param: burn::module::Param<Tensor<Train, D>>,
            ) -> burn::module::Param<Tensor<Train, D>> {
                param.set_require_grad(true)
            }
        }
        let unet = burn::module::Module::map(
            UNet2DConditionModel::<Train>::from_inner(start),
            &mut Trainable,
        );
        let (model, _) = self.train_from(unet, seed, steps, &mut |_, _, _| {})?;
        Ok(model)
    }

    /// Trains `unet` for `steps` steps on the training data, batches, timesteps and noise
    /// drawn from `seed`; returns the model and the mean loss of the last tenth of the steps.
    fn train_from(
        &self,
        unet: UNet2DConditionModel<Train>,
        seed: u64,
        steps: usize,
        observe: &mut dyn FnMut(usize, f32, &UNet2DConditionModel<Train>),
    ) -> Result<(UNet2DConditionModel<Cpu>, f64), EvalError> {
        let device = Default::default();
        let data = self.train_data();
        let (b, dropout) = (self.cfg.batch, self.cfg.cond_dropout);
        let mut next = |rng: &mut Rng| draw_batch::<Train>(&data, b, dropout, rng, &device);
        let mut rng = Rng::seed(seed ^ 0x7472_6169_6e00);
        let (model, log) =
            train_observed(unet, &self.cfg.recipe, steps, &mut rng, &mut next, observe)?;
        let tail = (log.losses.len() / 10).max(1);
        let final_loss = log.losses[log.losses.len() - tail..]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / tail as f64;
        Ok((model, final_loss))
    }

    /// The training data: the cache's first [`Proxy::train_items`] latents and the empty
    /// caption. Batches drawn from it know nothing of the arch, so the draws are the same for
    /// every candidate.
    pub fn train_data(&self) -> TrainData<'_> {
        TrainData {
            cache: &self.cache,
            uncond: &self.uncond,
            train_items: self.train_items(),
        }
    }

    /// The ground truth of calibration: trains `arch` from scratch as [`Proxy::train`] does
    /// for `steps` steps, calls `on_point(budget, loss)` with the validation loss of the
    /// current iterate after each step count in `budgets` (a learning curve), and returns
    /// the validation loss of the returned model (the EMA, when the recipe keeps one).
    pub fn train_curve(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
        budgets: &[usize],
        val: &ValidationSet,
        on_point: &mut dyn FnMut(usize, ValLoss),
    ) -> Result<ValLoss, EvalError> {
        let device: <Cpu as BackendTypes>::Device = Default::default();
        let score = |unet: &UNet2DConditionModel<Cpu>| {
            val.loss::<Cpu>(&self.cfg.recipe, VAL_BATCH, &device, &|x, t, c| {
                unet.forward(x, t, c)
            })
        };
        let (model, _) = self.train_observed(arch, seed, steps, &mut |k, _, unet| {
            if budgets.contains(&k) {
                on_point(k, score(&unet.valid()));
            }
        })?;
        Ok(score(&model))
    }

    /// Samples the fixed prompts with the fixed noise (`sampling_steps` DDIM steps, trailing
    /// spacing, guidance) and decodes them: images `[3, s, s]` in [0, 1].
    pub fn sample(
        &self,
        unet: &UNet2DConditionModel<Cpu>,
        sampling_steps: usize,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        let device: <Cpu as BackendTypes>::Device = Default::default();
        let cache = &self.cache;
        let [c, h, w] = cache.manifest.latent;
        let [tl, td] = cache.manifest.text;
        let t = cache.text_len();
        let l = cache.latent_len();
        let sf = cache.manifest.scaling_factor as f32;
        let noise = seeded_noise(self.cfg.data_seed, self.prompts.len() * l);
        let guidance = Guidance {
            scale: self.cfg.guidance,
            rescale: 0.0,
        };
        let cfg = guidance.scale > 1.0;
        let mut out = Vec::with_capacity(self.prompts.len());
        for (chunk_no, chunk) in self.prompts.chunks(SAMPLE_CHUNK).enumerate() {
            let n = chunk.len();
            let start = chunk_no * SAMPLE_CHUNK;
            let mut ctx = Vec::with_capacity(2 * n * t);
            if cfg {
                for _ in 0..n {
                    ctx.extend_from_slice(&self.uncond);
                }
            }
            for &i in chunk {
                ctx.extend_from_slice(&cache.context[i * t..][..t]);
            }
            let rows = if cfg { 2 * n } else { n };
            let context =
                Tensor::<Cpu, 3>::from_data(TensorData::new(ctx, [rows, tl, td]), &device);
            let noise = Tensor::<Cpu, 4>::from_data(
                TensorData::new(noise[start * l..(start + n) * l].to_vec(), [n, c, h, w]),
                &device,
            );
            let mut scheduler = SchedulerKind::Ddim.build::<Cpu>(&self.cfg.scheduler_config())?;
            let latents = denoise(
                unet,
                &mut *scheduler,
                noise,
                context,
                &guidance,
                sampling_steps,
                &mut |_, _| {},
            )?;
            let images = self
                .vae
                .decode(latents.div_scalar(sf))
                .div_scalar(2.0)
                .add_scalar(0.5)
                .clamp(0.0, 1.0);
            let s = self.cfg.image_size;
            let flat = images
                .into_data()
                .to_vec::<f32>()
                .map_err(|e| EvalError::Measure(format!("{e:?}")))?;
            if flat.iter().any(|v| !v.is_finite()) {
                return Err(EvalError::Diverged("sampling produced NaN/inf".into()));
            }
            out.extend(flat.chunks(3 * s * s).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// Scores generated images against the real reference: FD, KID, prompt adherence.
    pub fn score(&self, images: &[Vec<f32>]) -> Result<(f64, Kid, f64), EvalError> {
        let feats = match (&self.inception, &self.extractor) {
            (Some(inc), _) => inc.features(images, self.cfg.image_size)?,
            (None, Some(net)) => net.features(images, self.cfg.image_size)?,
            (None, None) => unreachable!("prepare requires an extractor"),
        };
        let fd = frechet_distance(&feats.stats()?, &self.reference_stats)?;
        let kid = kid(&feats, &self.reference, 10, 100, self.cfg.data_seed)?;
        let per_attr = self.adherence(images)?;
        let adherence = if per_attr.is_empty() {
            // No attribute labels: prompt adherence is not defined.
            f64::NAN
        } else {
            per_attr.iter().map(|a| a.1).sum::<f64>() / per_attr.len() as f64
        };
        Ok((fd, kid, adherence))
    }

    /// Prompt adherence of images sampled from the fixed prompts ([`Self::sample`]), per
    /// attribute: its name and the share of images the feature extractor assigns the
    /// prompted class. Empty when the score uses Inception features (no attribute heads).
    pub fn adherence(&self, images: &[Vec<f32>]) -> Result<Vec<(String, f64)>, EvalError> {
        let Some(net) = &self.extractor else {
            return Ok(Vec::new());
        };
        let intended: Vec<Vec<usize>> = self
            .prompts
            .iter()
            .take(images.len())
            .map(|&i| self.cache.manifest.labels[i].clone())
            .collect();
        let per_attr = net.adherence(images, self.cfg.image_size, &intended)?;
        Ok(self.attributes.iter().cloned().zip(per_attr).collect())
    }

    /// The fixed prompts' own latents (the posterior means of their images) decoded by the
    /// data's VAE: the best a sample can look through this VAE. Images `[3, s, s]` in [0, 1],
    /// in prompt order.
    pub fn reconstruct_prompts(&self) -> Result<Vec<Vec<f32>>, EvalError> {
        let device: <Cpu as BackendTypes>::Device = Default::default();
        let [c, h, w] = self.cache.manifest.latent;
        let l = self.cache.latent_len();
        let s = self.cfg.image_size;
        let mut out = Vec::with_capacity(self.prompts.len());
        for chunk in self.prompts.chunks(SAMPLE_CHUNK) {
            let mut flat = Vec::with_capacity(chunk.len() * l);
            for &i in chunk {
                flat.extend_from_slice(&self.cache.mean[i * l..][..l]);
            }
            let latents =
                Tensor::<Cpu, 4>::from_data(TensorData::new(flat, [chunk.len(), c, h, w]), &device);
            let images = self
                .vae
                .decode(latents)
                .div_scalar(2.0)
                .add_scalar(0.5)
                .clamp(0.0, 1.0)
                .into_data()
                .to_vec::<f32>()
                .map_err(|e| EvalError::Measure(format!("{e:?}")))?;
            out.extend(images.chunks(3 * s * s).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The data items whose captions are the fixed prompts, in sampling order.
    pub fn prompt_items(&self) -> &[usize] {
        &self.prompts
    }

    /// The captions of the fixed prompts, in sampling order.
    pub fn prompt_captions(&self) -> Vec<&str> {
        self.prompts
            .iter()
            .map(|&i| self.cache.manifest.captions[i].as_str())
            .collect()
    }

    /// The label of a score computed with `sampling_steps` steps.
    pub fn metric_label(&self, sampling_steps: usize) -> String {
        format!(
            "{}[{}; {} samples; {} DDIM steps; guidance {}{}]",
            if self.inception.is_some() {
                "fid"
            } else {
                "fd"
            },
            self.extractor_name(),
            self.prompts.len(),
            sampling_steps,
            self.cfg.guidance,
            self.teacher_note()
        )
    }

    /// The whole proxy evaluation of `arch` with seed `seed` at the configured budget.
    pub fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<ProxyScore, EvalError> {
        self.evaluate_with(arch, seed, self.cfg.steps)
    }

    /// As [`Proxy::evaluate`] with `steps` training steps. Scores are memoised in the cache
    /// folder (`scores/<key>.json`, key = hash of the arch, seed, steps and every setting that
    /// changes the score), so an architecture is never trained twice for the same question
    /// (resumed studies, benchmarks, calibration re-runs). The times in a memoised score are
    /// those of the run that computed it.
    pub fn evaluate_with(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
    ) -> Result<ProxyScore, EvalError> {
        let memo = self.memo_path(arch, seed, steps);
        if let Some(score) = std::fs::read_to_string(&memo)
            .ok()
            .and_then(|t| serde_json::from_str::<ProxyScore>(&t).ok())
        {
            return Ok(score);
        }
        let score = self.compute(arch, seed, steps)?;
        if let Some(dir) = memo.parent() {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!(".{}-{n}.tmp", std::process::id()));
            let text = serde_json::to_string_pretty(&score).expect("serialisable");
            if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &memo);
            }
        }
        Ok(score)
    }

    /// As [`Proxy::evaluate_with`], computed from scratch: never reads nor writes the score
    /// memo (determinism checks, noise measurements).
    pub fn evaluate_uncached(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
    ) -> Result<ProxyScore, EvalError> {
        self.compute(arch, seed, steps)
    }

    /// Where the memoised score of (`arch`, `seed`, `steps`) lives.
    pub fn memo_path(&self, arch: &UNetArch, seed: u64, steps: usize) -> PathBuf {
        let mut cfg = self.cfg.clone();
        cfg.cache_dir = None;
        cfg.steps = steps;
        let key = serde_json::json!({
            "arch": arch.hash_id(),
            "seed": seed,
            "config": cfg,
            "version": CACHE_VERSION,
        });
        self.cache_dir.join("scores").join(format!(
            "{}-{}.json",
            arch.hash_id(),
            sha16(&key.to_string())
        ))
    }

    fn compute(&self, arch: &UNetArch, seed: u64, steps: usize) -> Result<ProxyScore, EvalError> {
        let t0 = Instant::now();
        let (unet, final_loss) = self.train(arch, seed, steps, &mut |_, _| {})?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let images = self.sample(&unet, self.cfg.sampling_steps)?;
        let (fd, kid, adherence) = self.score(&images)?;
        Ok(ProxyScore {
            fd,
            kid: kid.mean,
            kid_std: kid.std,
            adherence,
            final_loss,
            train_seconds,
            sample_seconds: t1.elapsed().as_secs_f64(),
            samples: images.len(),
            metric: self.metric_label(self.cfg.sampling_steps),
        })
    }
}

/// Images denoised together when sampling.
const SAMPLE_CHUNK: usize = 64;

type Train = burn::backend::Autodiff<Cpu>;

/// Rows per forward when scoring the validation set (part of the score's arithmetic: fixed).
pub const VAL_BATCH: usize = 64;

/// Trains the VAE and the extractor, encodes the dataset, and writes the cache folder `dir`
/// atomically (built beside it, then renamed).
#[allow(clippy::too_many_arguments)]
fn build_cache(
    ds: &dyn Dataset,
    images: usize,
    dim: usize,
    vae_training: &VaeTraining,
    encoders: Option<&PipelineEncoders>,
    feature_training: &FeatureTraining,
    key_json: &str,
    dir: &std::path::Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), EvalError> {
    let parent = dir.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("proxy"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    let result = (|| {
        let t0 = Instant::now();
        let trained;
        let (vae, recon) = match encoders {
            Some(enc) => {
                progress(&format!(
                    "encoding {images} images with the VAE of {}",
                    enc.dir.display()
                ));
                (&enc.vae, None)
            }
            None => {
                progress(&format!(
                    "training the small VAE on {} ({} steps)",
                    ds.name(),
                    vae_training.steps
                ));
                let (vae, recon) = train_vae(ds, images, vae_training, &mut |_, _, _| {})?;
                save_vae(&vae, &tmp.join("vae.mpk"))?;
                progress(&format!(
                    "small VAE: reconstruction MSE {recon:.4} in {:.0} s; encoding {images} images",
                    t0.elapsed().as_secs_f64()
                ));
                trained = vae;
                (&trained, Some(recon))
            }
        };
        let vae_seconds = t0.elapsed().as_secs_f64();
        let device = Default::default();
        let mut mean = Vec::new();
        let mut logvar = Vec::new();
        let mut captions = Vec::with_capacity(images);
        let mut labels = Vec::with_capacity(images);
        let idx: Vec<usize> = (0..images).collect();
        let mut latent = [0usize; 3];
        for chunk in idx.chunks(128) {
            let x = image_batch::<Cpu>(ds, chunk, &device)?;
            let (m, lv) = vae.encode(x);
            let [_, c, h, w] = m.dims();
            latent = [c, h, w];
            mean.extend(
                m.into_data()
                    .to_vec::<f32>()
                    .map_err(|e| EvalError::Measure(format!("{e:?}")))?,
            );
            logvar.extend(
                lv.into_data()
                    .to_vec::<f32>()
                    .map_err(|e| EvalError::Measure(format!("{e:?}")))?,
            );
            for &i in chunk {
                let s = ds.get(i)?;
                captions.push(s.caption);
                labels.push(s.labels);
            }
        }
        let n = mean.len() as f64;
        let mu = mean.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = mean.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n;
        // The pipeline's own scale (its U-Net was trained on it); else 1 / sd of the means.
        let scaling_factor = match encoders {
            Some(enc) => enc.vae_config.scaling_factor,
            None => 1.0 / var.sqrt().max(1e-6),
        };
        let (context, text, vae_note, text_note) = match encoders {
            Some(enc) => {
                let text = enc.text_shape();
                progress(&format!(
                    "text encoder of {} ({} tokens x {}); training the feature extractor",
                    enc.dir.display(),
                    text[0],
                    text[1]
                ));
                (
                    enc.encode_captions(&captions),
                    text,
                    serde_json::json!({"pipeline": enc.dir.display().to_string(), "scaling_factor": scaling_factor}),
                    format!("the CLIP text encoder of {}", enc.dir.display()),
                )
            }
            None => {
                let encoder = CaptionEncoder::new(
                    captions.iter().map(String::as_str),
                    dim,
                    TEXT_LEN,
                    vae_training.seed,
                );
                progress(&format!(
                    "text encoder: frozen seeded CLIP (width {dim}, 2 layers) over {} words; training the feature extractor",
                    encoder.vocabulary()
                ));
                (
                    encoder.encode(&captions),
                    [TEXT_LEN, dim],
                    serde_json::json!({"config": "block_out_channels [16, 32], layers_per_block 1, norm groups 8, 4 latent channels",
                            "reconstruction_mse": recon, "seconds": vae_seconds}),
                    format!("CLIP text transformer, width {dim}, 2 layers, frozen at seeded random init (seed {}), word vocabulary of {} words", vae_training.seed, encoder.vocabulary()),
                )
            }
        };
        let t1 = Instant::now();
        let extractor = FeatureExtractor::train(ds, feature_training, &mut |_, _, _| {})?;
        extractor.save(&tmp.join("featurenet.mpk"))?;
        let held_out = if ds.len() >= feature_training.images + 200 {
            let start = feature_training.images;
            Some(accuracy(
                &extractor,
                ds,
                start..(start + 500).min(ds.len()),
            )?)
        } else {
            None
        };
        progress(&format!(
            "feature extractor trained in {:.0} s; held-out attribute accuracy {:?}",
            t1.elapsed().as_secs_f64(),
            held_out
        ));
        let cache = LatentCache {
            manifest: Manifest {
                version: CACHE_VERSION,
                dataset: ds.name(),
                latent,
                text,
                scaling_factor,
                captions,
                labels,
                shards: Vec::new(),
                provenance: serde_json::json!({
                    "key": serde_json::from_str::<serde_json::Value>(key_json).unwrap_or_default(),
                    "vae": vae_note,
                    "text_encoder": text_note,
                    "feature_extractor": {"held_out_accuracy": held_out},
                }),
            },
            mean,
            logvar,
            context,
        };
        cache.save(&tmp)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, dir).is_err() {
        // Another process finished the same cache first: keep theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("manifest.json").exists() {
            return Err(io_err(dir, "could not move the prepared cache into place"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::copy_prepared;
    use sha2::{Digest, Sha256};

    /// A prepared folder whose manifest records `key` and whose SHA256SUMS lists its files.
    fn prepared(dir: &std::path::Path, key: &str) {
        std::fs::create_dir_all(dir).unwrap();
        let manifest = format!(r#"{{"provenance": {{"key": {key}}}}}"#);
        std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
        std::fs::write(dir.join("latents.bin"), b"0123").unwrap();
        let sums: String = ["manifest.json", "latents.bin"]
            .iter()
            .map(|name| {
                let hex: String = Sha256::digest(std::fs::read(dir.join(name)).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("{hex}  {name}\n")
            })
            .collect();
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    }

    #[test]
    fn a_copy_finished_first_by_another_process_is_accepted() {
        let root = tempfile::tempdir().unwrap();
        let key = r#"{"seed": 1}"#;
        let src = root.path().join("shipped");
        prepared(&src, key);
        let dst = root.path().join("cache/proxy-1");
        // The other process's copy is already in place.
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        copy_prepared(&src, &dst, key).unwrap();
        copy_prepared(&src, &dst, key).unwrap();
        assert_eq!(std::fs::read(dst.join("latents.bin")).unwrap(), b"0123");
        let left: Vec<_> = std::fs::read_dir(dst.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("proxy-1")],
            "no tmp folder left"
        );
    }

    #[test]
    fn a_copy_for_other_settings_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("shipped");
        prepared(&src, r#"{"seed": 1}"#);
        let err = copy_prepared(&src, &root.path().join("proxy-2"), r#"{"seed": 2}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("provenance.key"), "{err}");
    }
}
