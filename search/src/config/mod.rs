//! Study configuration (TOML, `deny_unknown_fields`; every default documented on its field).
//!
//! ```toml
//! name = "quick"
//! space = "tiny"            # preset name or a space file
//! trials = 48
//! seed = 0
//! jobs = 2
//!
//! [controller]
//! kind = "aging"            # aging | nsga2 | random
//! population = 16
//! sample = 4
//!
//! [latency]
//! model = "profile:a10g"    # a device profile (name or file)
//! budget_ms = 40.0
//! latent = 64
//!
//! [constraints]
//! max_params = 900_000_000
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};
use unas_evaluator::latency::LatencyModel;
use unas_evaluator::quality::proxy::ProxyConfig;
use unas_space::{SearchSpace, Source};

use crate::error::SearchError;

/// Which search strategy proposes the candidates, with its settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ControllerConfig {
    /// Regularized (aging) evolution (Real et al. 2019).
    Aging {
        /// Population size P: the first P trials are random; later the population is the P most
        /// recent usable trials (default 20).
        #[serde(default = "default_population")]
        population: usize,
        /// Tournament size S drawn from the population without replacement (default 5).
        #[serde(default = "default_sample")]
        sample: usize,
    },
    /// NSGA-II with constrained domination (Deb 2002), generation-synchronous.
    Nsga2 {
        /// Population size N = generation size (default 20).
        #[serde(default = "default_population")]
        population: usize,
    },
    /// Uniform random sampling (avoiding archs already proposed): the baseline.
    Random,
}

fn default_population() -> usize {
    20
}
fn default_sample() -> usize {
    5
}

impl ControllerConfig {
    /// Short name (`aging`, `nsga2`, `random`).
    pub fn name(&self) -> &'static str {
        match self {
            ControllerConfig::Aging { .. } => "aging",
            ControllerConfig::Nsga2 { .. } => "nsga2",
            ControllerConfig::Random => "random",
        }
    }
}

/// Optional caps besides the latency budget (checked before any quality evaluation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ConstraintsConfig {
    /// Maximum U-Net parameters (default: none).
    #[serde(default)]
    pub max_params: Option<u64>,
    /// Maximum MACs of one forward at the latency setting (default: none).
    #[serde(default)]
    pub max_macs: Option<u64>,
}

/// Successive halving, asynchronous (ASHA, Li et al. 2020; Optuna's `SuccessiveHalvingPruner`
/// is the synchronous reference): rung 0 is every trial's own evaluation; whenever a runner
/// or worker is free, the first trial of the best `1/reduction` of a rung's finished scores
/// that is not yet at the next rung is promoted (the highest rung first), else a new trial
/// starts. The quality evaluator says what each rung measures (e.g. the supernet score, then
/// after K fine-tuning steps).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HalvingConfig {
    /// Rungs, rung 0 included (at least 2).
    pub rungs: usize,
    /// Reduction factor η (default 3, at least 2): a rung promotes its best 1/η.
    #[serde(default = "default_reduction")]
    pub reduction: usize,
}

fn default_reduction() -> usize {
    3
}

/// A whole study.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    /// Study name (required; the run directory defaults to `runs/<name>/` in the CLI).
    pub name: String,
    /// Search space: preset name (`tiny`, `default`) or file (default `tiny`). The resolved
    /// space is stored with the study, so a resumed study does not re-read the file.
    #[serde(default = "default_space")]
    pub space: String,
    /// Search strategy (required).
    pub controller: ControllerConfig,
    /// Trial budget: number of trials proposed in all, duplicates, infeasible and failed ones
    /// included (required).
    pub trials: usize,
    /// Latency model and budget (required).
    pub latency: LatencyConfig,
    /// Parameter / MAC caps (default: none).
    #[serde(default)]
    pub constraints: ConstraintsConfig,
    /// Study seed (default 0). Trial `n`'s proposal uses an RNG seeded from (seed, n).
    #[serde(default)]
    pub seed: u64,
    /// Worker threads evaluating candidates in parallel (default 1).
    #[serde(default = "default_jobs")]
    pub jobs: usize,
    /// Proposal window W: trial `n` is proposed from the results of trials `0..n+1-W` only, so
    /// at most W trials are open at once. The sequence of archs depends on W but not on `jobs`
    /// or timing. Default: `jobs`. (NSGA-II is generation-synchronous and ignores it.)
    #[serde(default)]
    pub window: Option<usize>,
    /// Quality value of the hypervolume reference point (latency: `budget_ms`). Default: the
    /// worst feasible quality seen so far (hypervolumes then compare only within one state).
    #[serde(default)]
    pub quality_reference: Option<f64>,
    /// Proxy-quality settings (the `[quality]` table; default: every
    /// [`ProxyConfig`] default).
    #[serde(default)]
    pub quality: ProxyConfig,
    /// Successive halving (the `[halving]` table; default: none): each trial's quality at
    /// rung 0, the best of each rung re-scored at the next (ASHA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halving: Option<HalvingConfig>,
    /// Reference architectures (preset names such as `tiny`, `tiny-nas`, or arch files)
    /// evaluated like trials and shown in reports, but outside the trial budget and never
    /// parents (default: none).
    #[serde(default)]
    pub references: Vec<String>,
}

fn default_space() -> String {
    "tiny".into()
}
fn default_jobs() -> usize {
    1
}

impl StudyConfig {
    /// Reads and validates a study file.
    pub fn load(path: &Path) -> Result<Self, SearchError> {
        let src = Source::read(path)?;
        Self::from_source(&src)
    }

    /// Parses and validates a study document.
    pub fn from_source(src: &Source) -> Result<Self, SearchError> {
        let cfg: StudyConfig = src.parse()?;
        cfg.check().map_err(|(f, m)| src.invalid_at(&f, m))?;
        for r in &cfg.references {
            if let Err(e) = unas_space::load_arch(r) {
                return Err(src.invalid_at("references", format!("`{r}`: {e}")).into());
            }
        }
        Ok(cfg)
    }

    /// Checks value ranges; `Err((field, message))`.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        if self.name.trim().is_empty() {
            return bad("name", "must not be empty");
        }
        if self.name.contains("::") {
            return bad("name", "must not contain `::`");
        }
        if self.trials == 0 {
            return bad("trials", "must be at least 1");
        }
        if self.jobs == 0 {
            return bad("jobs", "must be at least 1");
        }
        if self.window == Some(0) {
            return bad("window", "must be at least 1");
        }
        match self.latency.budget_quantile {
            Some(q) if !(q > 0.0 && q < 1.0) => {
                return bad(
                    "latency.budget_quantile",
                    "must lie strictly between 0 and 1",
                );
            }
            Some(_) if self.latency.budget_ms == 0.0 => {}
            _ if !(self.latency.budget_ms > 0.0 && self.latency.budget_ms.is_finite()) => {
                return bad(
                    "latency.budget_ms",
                    "must be a positive number of milliseconds (or give budget_quantile)",
                );
            }
            _ => {}
        }
        if self.latency.latent == 0 || self.latency.batch == 0 {
            return bad("latency.latent", "latent and batch must be at least 1");
        }
        self.check_time_to_image()?;
        if self.constraints.max_params == Some(0) {
            return bad("constraints.max_params", "must be at least 1");
        }
        if self.constraints.max_macs == Some(0) {
            return bad("constraints.max_macs", "must be at least 1");
        }
        match self.controller {
            ControllerConfig::Aging { population, sample } => {
                if population < 2 {
                    return bad("controller.population", "must be at least 2");
                }
                if sample == 0 || sample > population {
                    return bad("controller.sample", "must be in 1..=population");
                }
            }
            ControllerConfig::Nsga2 { population } => {
                if population < 2 {
                    return bad("controller.population", "must be at least 2");
                }
            }
            ControllerConfig::Random => {}
        }
        if let Some(h) = &self.halving {
            if h.rungs < 2 {
                return bad("halving.rungs", "must be at least 2 (rung 0 and one more)");
            }
            if h.reduction < 2 {
                return bad("halving.reduction", "must be at least 2");
            }
        }
        if let Some(q) = self.quality_reference {
            if !q.is_finite() {
                return bad("quality_reference", "must be finite");
            }
        }
        if let Err(e) = self.quality.check() {
            // The proxy's messages read `quality.FIELD: message`.
            let e = e.to_string();
            return match e.split_once(": ") {
                Some((field, message)) if field.starts_with("quality.") => bad(field, message),
                _ => bad("quality", &e),
            };
        }
        Ok(())
    }

    /// Resolves `latency.budget_quantile` (when given and `budget_ms` is not yet set) with
    /// `model`: `budget_ms` becomes that quantile of its predictions over 300 uniform samples
    /// of the space (seeded; 0.01 ms resolution). Returns the budget set, if any.
    pub fn resolve_budget(
        &mut self,
        space: &SearchSpace,
        model: &dyn LatencyModel,
    ) -> Result<Option<f64>, SearchError> {
        let Some(q) = self.latency.budget_quantile else {
            return Ok(None);
        };
        if self.latency.budget_ms > 0.0 {
            return Ok(None);
        }
        let setting = self.latency.setting();
        let mut rng = unas_space::rng::Rng::seed(0x6275_6467_6574);
        let mut ms = Vec::with_capacity(300);
        for _ in 0..300 {
            let arch = space.decode(&space.sample(&mut rng).map_err(SearchError::Sample)?);
            let step_ms = model.predict(&arch, &setting)?.total_ms;
            ms.push(
                self.latency
                    .objective_ms(&arch, step_ms)
                    .map_err(|message| SearchError::InvalidConfig {
                        field: "latency.budget_quantile".into(),
                        message,
                    })?,
            );
        }
        ms.sort_by(f64::total_cmp);
        let at = ((ms.len() - 1) as f64 * q).round() as usize;
        let budget = (ms[at] * 100.0).round() / 100.0;
        self.latency.budget_ms = budget;
        Ok(Some(budget))
    }

    /// The effective proposal window (see [`StudyConfig::window`]).
    pub fn window(&self) -> usize {
        self.window.unwrap_or(self.jobs).max(1)
    }

    /// Loads the configured space (preset or file); a time-to-image study adds its sampling
    /// step counts as a knob.
    pub fn load_space(&self) -> Result<SearchSpace, SearchError> {
        let mut space = SearchSpace::load(&self.space)?;
        space.knobs.sampling_steps = self.latency.step_choices();
        Ok(space)
    }
}

mod latency;
#[cfg(test)]
mod tests;

pub use latency::{LatencyConfig, LatencyObjective, DEFAULT_SAMPLING_STEPS};
