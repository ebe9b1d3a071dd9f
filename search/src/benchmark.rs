//! Strategy benchmark: each strategy against random search at equal trial budgets over
//! several seeds, scored by the hypervolume of the feasible (latency, quality) front.
//!
//! All runs share one quality cache keyed by arch hash (an arch is evaluated once across all
//! runs; the cached score is reused whatever the run's seed), and one reference point:
//! latency = `budget_ms`, quality = the config's `quality_reference` or else the worst feasible
//! quality seen in any run. Each run uses a private in-memory store.

use std::collections::HashMap;
use std::sync::Mutex;

use unas_evaluator::latency::LatencyModel;
use unas_space::UNetArch;

use crate::config::{ControllerConfig, StudyConfig};
use crate::engine::Study;
use crate::error::SearchError;
use crate::objective::{Evaluators, QualityError, QualityEvaluator, QualityResult};
use crate::store::{SqliteStore, TrialRecord, TrialStatus};

/// One strategy's hypervolumes.
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyResult {
    /// Strategy name (`aging`, `nsga2`, `random`).
    pub name: String,
    /// Its settings.
    pub controller: ControllerConfig,
    /// Hypervolume per seed (same order as [`BenchmarkReport::seeds`]).
    pub hypervolumes: Vec<f64>,
    /// Mean hypervolume.
    pub mean: f64,
    /// `mean / mean of random search` (NaN if random's mean is 0).
    pub ratio_to_random: f64,
}

/// The benchmark's results.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchmarkReport {
    /// Seeds used.
    pub seeds: Vec<u64>,
    /// Trials per run.
    pub trials: usize,
    /// Hypervolume reference point (latency_ms, quality).
    pub reference: [f64; 2],
    /// Per strategy, in the order given (random search included).
    pub strategies: Vec<StrategyResult>,
    /// Distinct quality evaluations made (cache misses).
    pub quality_evaluations: usize,
}

impl BenchmarkReport {
    /// A Markdown table of the results.
    pub fn markdown(&self) -> String {
        let mut s = "| strategy | mean hypervolume | vs random | per seed |\n|---|---|---|---|\n"
            .to_string();
        for r in &self.strategies {
            let per: Vec<String> = r.hypervolumes.iter().map(|h| format!("{h:.4}")).collect();
            s.push_str(&format!(
                "| {} | {:.4} | {:.3}x | {} |\n",
                r.name,
                r.mean,
                r.ratio_to_random,
                per.join(", ")
            ));
        }
        s
    }
}

/// Quality evaluations cached by arch hash (shared across benchmark runs).
struct Cached<'a> {
    inner: &'a (dyn QualityEvaluator + Sync),
    cache: Mutex<HashMap<String, Result<QualityResult, QualityError>>>,
}

impl QualityEvaluator for Cached<'_> {
    fn describe(&self) -> String {
        format!("{} (cached by arch hash)", self.inner.describe())
    }

    fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<QualityResult, QualityError> {
        let h = arch.hash_id();
        if let Some(r) = self.cache.lock().expect("cache lock").get(&h) {
            return r.clone();
        }
        let r = self.inner.evaluate(arch, seed);
        self.cache
            .lock()
            .expect("cache lock")
            .entry(h)
            .or_insert(r)
            .clone()
    }
}

/// Runs every strategy (which must include [`ControllerConfig::Random`]) once per seed with
/// `base`'s settings otherwise, and reports mean hypervolumes and ratios to random search.
/// Use at least 5 seeds for a claim.
pub fn strategy_benchmark(
    base: &StudyConfig,
    strategies: &[ControllerConfig],
    seeds: &[u64],
    latency: &(dyn LatencyModel + Sync),
    quality: &(dyn QualityEvaluator + Sync),
) -> Result<BenchmarkReport, SearchError> {
    if seeds.is_empty() {
        return Err(SearchError::Benchmark("no seeds given".into()));
    }
    let Some(random_idx) = strategies
        .iter()
        .position(|c| *c == ControllerConfig::Random)
    else {
        return Err(SearchError::Benchmark(
            "random search must be among the strategies (it is the baseline)".into(),
        ));
    };
    let cached = Cached {
        inner: quality,
        cache: Mutex::new(HashMap::new()),
    };
    let ev = Evaluators {
        latency,
        quality: &cached,
    };
    let mut runs: Vec<Vec<Vec<TrialRecord>>> = Vec::new();
    for (si, c) in strategies.iter().enumerate() {
        let mut per_seed = Vec::new();
        for &seed in seeds {
            let mut cfg = base.clone();
            cfg.name = format!("bench-{si}-{}-{seed}", c.name());
            cfg.controller = c.clone();
            cfg.seed = seed;
            let mut study = Study::create_in(Box::new(SqliteStore::in_memory()?), cfg)?;
            study.run(ev, &mut |_| {})?;
            per_seed.push(study.trials()?);
        }
        runs.push(per_seed);
    }
    let worst = runs
        .iter()
        .flatten()
        .flatten()
        .filter(|t| t.status == TrialStatus::Done)
        .filter_map(|t| t.quality)
        .fold(f64::NEG_INFINITY, f64::max);
    let reference = [
        base.latency.budget_ms,
        base.quality_reference.unwrap_or(worst),
    ];
    let mut results: Vec<StrategyResult> = strategies
        .iter()
        .zip(&runs)
        .map(|(c, per_seed)| {
            let hypervolumes: Vec<f64> = per_seed
                .iter()
                .map(|t| Study::hypervolume_of(t, reference))
                .collect();
            let mean = hypervolumes.iter().sum::<f64>() / hypervolumes.len() as f64;
            StrategyResult {
                name: c.name().to_string(),
                controller: c.clone(),
                hypervolumes,
                mean,
                ratio_to_random: f64::NAN,
            }
        })
        .collect();
    let random_mean = results[random_idx].mean;
    for r in &mut results {
        r.ratio_to_random = if random_mean > 0.0 {
            r.mean / random_mean
        } else {
            f64::NAN
        };
    }
    let quality_evaluations = cached.cache.lock().expect("cache lock").len();
    Ok(BenchmarkReport {
        seeds: seeds.to_vec(),
        trials: base.trials,
        reference,
        strategies: results,
        quality_evaluations,
    })
}
