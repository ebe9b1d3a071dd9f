//! The `[quality]` settings of the proxy and their checks.

#[allow(unused_imports)]
use super::*;

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
    /// timesteps and noise for every candidate) or `supernet-paired` (the relative squared
    /// distance of the candidate's samples, `paired_steps` DDIM steps, to its supernet's
    /// largest network's, 50 steps, from the same prompts and noise); see docs/supernet.md.
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
    /// DDIM steps a candidate samples with under `objective = "supernet-paired"` (default 50,
    /// the largest network's own; see docs/supernet.md).
    /// Not serialised at its default, so that settings keys made before it existed hold.
    #[serde(
        default = "default_paired_steps",
        skip_serializing_if = "is_default_paired_steps"
    )]
    pub paired_steps: usize,
    /// Successive halving with a supernet objective: the fine-tuning steps of rungs 1, 2, …
    /// (rung 0 is `objective` itself), increasing — e.g. `[50, 150]` (default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rung_finetune_steps: Vec<usize>,
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
    /// Paired distance of the candidate's samples to its supernet's largest network's, from
    /// the same prompts and noise ([`crate::quality::paired`]).
    SupernetPaired,
}

impl Objective {
    /// The objective's name in calibration tables (`proxy` column of `summary.csv`):
    /// `supernet-val-loss`, `supernet-finetune@K` (K = `finetune_steps`), `supernet-paired@K`
    /// (K = `paired_steps`), `fd`.
    pub fn calibration_name(self, finetune_steps: usize, paired_steps: usize) -> String {
        match self {
            Self::Fd => "fd".into(),
            Self::SupernetValLoss => "supernet-val-loss".into(),
            Self::SupernetFinetune => format!("supernet-finetune@{finetune_steps}"),
            Self::SupernetPaired => crate::quality::paired::name(paired_steps),
        }
    }

    /// Whether the objective scores candidates on trained supernets.
    pub fn uses_supernets(self) -> bool {
        matches!(
            self,
            Self::SupernetValLoss | Self::SupernetFinetune | Self::SupernetPaired
        )
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
fn default_paired_steps() -> usize {
    crate::quality::paired::REFERENCE_STEPS
}
fn is_default_paired_steps(k: &usize) -> bool {
    *k == default_paired_steps()
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

impl ProxyConfig {
    /// The objective's name in calibration tables ([`Objective::calibration_name`]).
    pub fn objective_name(&self) -> String {
        self.objective
            .calibration_name(self.finetune_steps, self.paired_steps)
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        toml::from_str("").expect("all fields have defaults")
    }
}

/// A `quality.FIELD: message` error.
pub(super) fn config_err(field: &str, message: impl std::fmt::Display) -> EvalError {
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
            ("paired_steps", self.paired_steps),
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
        if !self.rung_finetune_steps.is_empty() {
            if self.objective == Objective::SupernetPaired {
                return Err(config_err(
                    "rung_finetune_steps",
                    "the rungs fine-tune towards a lower validation loss, which                      `supernet-paired` does not score: use `supernet-val-loss` or                      `supernet-finetune`",
                ));
            }
            if !self.objective.uses_supernets() {
                return Err(config_err(
                    "rung_finetune_steps",
                    "the rungs fine-tune a supernet's candidate: use a supernet objective",
                ));
            }
            let first = match self.objective {
                Objective::SupernetFinetune => self.finetune_steps,
                _ => 0,
            };
            let mut last = first;
            for &k in &self.rung_finetune_steps {
                if k <= last {
                    return Err(config_err(
                        "rung_finetune_steps",
                        format!("must increase, each above {first} (rung 0's steps)"),
                    ));
                }
                self.recipe
                    .ema_window(k)
                    .map_err(|m| config_err("rung_finetune_steps", m))?;
                last = k;
            }
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

    /// The DDIM sampler of this recipe ([`Recipe::scheduler_config`]).
    pub fn scheduler_config(&self) -> SchedulerConfig {
        self.recipe.scheduler_config()
    }
}
