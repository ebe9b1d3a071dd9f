//! The latency part of a study: the model, the setting it is asked about, the budget, and
//! the time-to-image objective (sampling steps as a knob, latency per image).

use std::path::Path;

use serde::{Deserialize, Serialize};
use unas_evaluator::latency::image::ImageParts;
use unas_evaluator::latency::lut::LookupTable;
use unas_evaluator::latency::profile::DeviceProfile;
use unas_evaluator::latency::{Dtype, LatencyModel, LatencySetting};
use unas_space::{SearchSpace, UNetArch};

use super::StudyConfig;
use crate::error::SearchError;

/// The latency model, the setting it is asked about, and the budget.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LatencyConfig {
    /// Latency model: `profile:NAME` or `profile:FILE` (a roofline device profile), `lut:FILE`
    /// (a per-block lookup table from `unas profile`, whose setting must equal this one),
    /// `lut:auto` (this machine's own table for the space: profiled on first use, cached,
    /// checked end to end before every use and profiled again when it is off by over 10 %), or
    /// a bare profile name/file. Default `profile:a10g`. Callers may also pass any other
    /// [`LatencyModel`] to [`crate::Study::run`]; this field then only documents it.
    #[serde(default = "default_model")]
    pub model: String,
    /// Latency budget in milliseconds, per denoising step (per image with `objective =
    /// "image"`; required unless `budget_quantile` is given): a candidate predicted above it is
    /// infeasible and never evaluated for quality.
    #[serde(default)]
    pub budget_ms: f64,
    /// A budget relative to this machine: the quantile (e.g. 0.5) of the latency model's
    /// predictions over 300 seeded uniform samples of the space, resolved when the study is
    /// created and stored as `budget_ms` (a table of another machine, or none, gives another
    /// number; the study keeps the one it was created with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_quantile: Option<f64>,
    /// Latent side (default 64, i.e. 512 px).
    #[serde(default = "default_latent")]
    pub latent: usize,
    /// U-Net batch (default 2: one image with classifier-free guidance).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Text tokens (default 77).
    #[serde(default = "default_text_len")]
    pub text_len: usize,
    /// Element type (default `f16`).
    #[serde(default = "default_dtype")]
    pub dtype: Dtype,
    /// What the latency objective and `budget_ms` measure: `"step"` (default: one U-Net
    /// step) or `"image"` (time to an image: the sampling step count becomes a knob of the
    /// search, chosen from `sampling_steps`, and the latency is per image — text encoder,
    /// steps × (U-Net step + scheduler), VAE decode; quality is then measured at each
    /// candidate's own step count).
    #[serde(default, skip_serializing_if = "LatencyObjective::is_step")]
    pub objective: LatencyObjective,
    /// The step counts a time-to-image search chooses from (`objective = "image"` only;
    /// default `[10, 15, 20, 30, 50]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampling_steps: Vec<usize>,
    /// The step count references are evaluated at in a time-to-image search (default: the
    /// largest of `sampling_steps`, e.g. SD1.5-like at 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_steps: Option<usize>,
    /// The pipeline around the U-Net steps (`objective = "image"`): from the device profile's
    /// kernels, or — for a table or measurement of U-Net steps alone — timed on this machine
    /// from the proxy's text encoder and VAE decoder when the study is created, and stored
    /// with it. May be given (`fixed_ms`, `step_extra_ms`, `images`, `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_parts: Option<ImageParts>,
}

/// What a study's latency objective measures.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LatencyObjective {
    /// One U-Net step (ms).
    #[default]
    Step,
    /// One image: the whole pipeline at the candidate's sampling step count (ms).
    Image,
}

impl LatencyObjective {
    fn is_step(&self) -> bool {
        *self == LatencyObjective::Step
    }
}

/// The default step counts of a time-to-image search.
pub const DEFAULT_SAMPLING_STEPS: [usize; 5] = [10, 15, 20, 30, 50];

fn default_model() -> String {
    "profile:a10g".into()
}
fn default_latent() -> usize {
    64
}
fn default_batch() -> usize {
    2
}
fn default_text_len() -> usize {
    77
}
fn default_dtype() -> Dtype {
    Dtype::F16
}

impl LatencyConfig {
    /// Whether latencies are per image (time to an image) rather than per U-Net step.
    pub fn per_image(&self) -> bool {
        self.objective == LatencyObjective::Image
    }

    /// The step counts of a time-to-image search (`sampling_steps` or the default); empty
    /// for a per-step objective.
    pub fn step_choices(&self) -> Vec<usize> {
        match (self.per_image(), self.sampling_steps.is_empty()) {
            (false, _) => Vec::new(),
            (true, true) => DEFAULT_SAMPLING_STEPS.to_vec(),
            (true, false) => self.sampling_steps.clone(),
        }
    }

    /// The step count references are evaluated at (time-to-image searches).
    pub fn reference_step_count(&self) -> Option<usize> {
        self.per_image().then(|| {
            self.reference_steps
                .unwrap_or_else(|| self.step_choices().into_iter().max().unwrap_or(50))
        })
    }

    /// The latency objective of `arch` whose U-Net step takes `step_ms`: `step_ms` itself, or
    /// per image at the architecture's step count. `Err` when a per-image objective lacks
    /// the pipeline's parts or the architecture its step count.
    pub fn objective_ms(&self, arch: &UNetArch, step_ms: f64) -> Result<f64, String> {
        if !self.per_image() {
            return Ok(step_ms);
        }
        let parts = self.image_parts.as_ref().ok_or(
            "latency.image_parts is not resolved (the study must be created by `unas search`)",
        )?;
        let steps = arch
            .sampling_steps
            .ok_or("a time-to-image candidate without a sampling step count")?;
        Ok(parts.per_image_ms(step_ms, steps))
    }

    /// Unit words for reports: (`"ms per step"` or `"s per image"`).
    pub fn unit(&self) -> &'static str {
        if self.per_image() {
            "s per image"
        } else {
            "ms per step"
        }
    }

    /// The setting latencies (and MACs) are computed for.
    pub fn setting(&self) -> LatencySetting {
        LatencySetting {
            latent: self.latent,
            batch: self.batch,
            text_len: self.text_len,
            dtype: self.dtype,
        }
    }

    /// [`Self::build`] for a study over `space`: `lut:auto` is this machine's own table for
    /// the space (profiled on first use, cached, checked before use:
    /// [`unas_evaluator::latency::auto`]); `progress` gets its log lines.
    pub fn build_for(
        &self,
        space: &SearchSpace,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Box<dyn LatencyModel + Send + Sync>, SearchError> {
        if self.model != "lut:auto" {
            return self.build();
        }
        if self.dtype != Dtype::F32 {
            return Err(SearchError::InvalidConfig {
                field: "latency.dtype".into(),
                message: "lut:auto profiles this CPU, which is measured in f32".into(),
            });
        }
        let root = unas_evaluator::quality::proxy::default_cache_root();
        let table =
            unas_evaluator::latency::auto::auto_table(space, &self.setting(), &root, progress)?;
        Ok(Box::new(table))
    }

    /// Builds the configured model (roofline device profiles, lookup tables; `lut:auto` needs
    /// the space: [`Self::build_for`]; other model kinds are built by the caller and passed to
    /// [`crate::Study::run`]).
    pub fn build(&self) -> Result<Box<dyn LatencyModel + Send + Sync>, SearchError> {
        if self.model == "lut:auto" {
            return Err(SearchError::InvalidConfig {
                field: "latency.model".into(),
                message: "lut:auto is this machine's table for the study's space: built with \
                          the space (LatencyConfig::build_for)"
                    .into(),
            });
        }
        if let Some(file) = self.model.strip_prefix("lut:") {
            let table = LookupTable::load(Path::new(file))?;
            if table.setting != self.setting() {
                let s = |x: &LatencySetting| {
                    format!(
                        "latent {}, batch {}, text_len {}, dtype {}",
                        x.latent,
                        x.batch,
                        x.text_len,
                        x.dtype.name()
                    )
                };
                return Err(SearchError::InvalidConfig {
                    field: "latency.model".into(),
                    message: format!(
                        "lookup table {file} was measured at {} but the study's [latency] asks for {}; set latency.latent/batch/text_len/dtype to the table's setting or profile the space at yours",
                        s(&table.setting),
                        s(&self.setting())
                    ),
                });
            }
            return Ok(Box::new(table));
        }
        let spec = self.model.strip_prefix("profile:").unwrap_or(&self.model);
        Ok(Box::new(DeviceProfile::load(spec)?))
    }
}

impl StudyConfig {
    /// The time-to-image settings: step counts only with `objective = "image"`, each at least
    /// 1 and listed once, and a quality measured at the candidate's step count.
    pub(super) fn check_time_to_image(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: String| Err((f.to_string(), m));
        let l = &self.latency;
        if !l.per_image() {
            for (field, set) in [
                ("latency.sampling_steps", !l.sampling_steps.is_empty()),
                ("latency.reference_steps", l.reference_steps.is_some()),
                ("latency.image_parts", l.image_parts.is_some()),
            ] {
                if set {
                    return bad(field, "only with latency.objective = \"image\"".into());
                }
            }
            return Ok(());
        }
        let steps = l.step_choices();
        if steps.contains(&0) || l.reference_steps == Some(0) {
            return bad(
                "latency.sampling_steps",
                "step counts must be at least 1".into(),
            );
        }
        let mut sorted = steps.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != steps.len() {
            return bad("latency.sampling_steps", "lists a value twice".into());
        }
        if let Some(p) = &l.image_parts {
            let finite = |v: f64| v.is_finite() && v >= 0.0;
            if !(finite(p.fixed_ms) && finite(p.step_extra_ms) && p.images >= 1) {
                return bad(
                    "latency.image_parts",
                    "needs finite fixed_ms ≥ 0, step_extra_ms ≥ 0 and images ≥ 1".into(),
                );
            }
        }
        use unas_evaluator::quality::proxy::Objective;
        if !matches!(
            self.quality.objective,
            Objective::Fd | Objective::SupernetPaired
        ) {
            return bad(
                "latency.objective",
                format!(
                    "\"image\" needs a quality measured at each candidate's step count: \
                     quality.objective = \"supernet-paired\" or \"fd\" (\"{}\" does not sample)",
                    self.quality
                        .objective
                        .calibration_name(self.quality.finetune_steps, self.quality.paired_steps)
                ),
            );
        }
        Ok(())
    }

    /// For a time-to-image study without `latency.image_parts`: the model's own figures
    /// (a device profile's kernels) or, when it prices U-Net steps alone, `measure()`'s
    /// (this machine's pipeline parts), stored in the configuration. Returns them when set.
    pub fn resolve_image_parts(
        &mut self,
        model: &dyn LatencyModel,
        measure: &mut dyn FnMut(&LatencySetting) -> Result<ImageParts, SearchError>,
    ) -> Result<Option<ImageParts>, SearchError> {
        if !self.latency.per_image() || self.latency.image_parts.is_some() {
            return Ok(None);
        }
        let setting = self.latency.setting();
        let parts = match model.image_parts(&setting)? {
            Some(p) => p,
            None => measure(&setting)?,
        };
        self.latency.image_parts = Some(parts.clone());
        Ok(Some(parts))
    }
}
