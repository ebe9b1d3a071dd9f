//! Strategy benchmark: each strategy against random search at equal trial budgets over
//! several seeds, scored by the hypervolume of the feasible (latency, quality) front.
//!
//! All runs share one quality cache keyed by arch hash (an arch is evaluated once across all
//! runs; the cached score is reused whatever the run's seed), and one reference point:
//! latency = `budget_ms`, quality = the config's `quality_reference` or else the worst feasible
//! quality seen in any run. Each run uses a private in-memory store.
//!
//! Per strategy: the mean hypervolume and its ratio to random search's, with a percentile
//! bootstrap CI over seeds (the runs of one seed are paired: they share their first random
//! trials and the evaluation cache, so seeds are resampled, not runs), and, per seed, the
//! trials it needed to reach 95 % of the best final hypervolume any strategy reached on that
//! seed (anytime performance at an equal trial budget).

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
    /// 95 % percentile-bootstrap interval of `ratio_to_random`, resampling seeds.
    pub ratio_ci: [f64; 2],
    /// Per seed: the trials (in number order, failed and infeasible ones counted) after which
    /// the run's hypervolume first reached 95 % of the best final hypervolume of that seed
    /// over all strategies; `None` when it never did.
    pub trials_to_95: Vec<Option<usize>>,
    /// Per seed: the trials that repeated an architecture already proposed in that run (each
    /// receives the stored result: a trial spent without new information).
    pub duplicates: Vec<usize>,
}

/// Bootstrap resamples of the ratio CI.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The 95 % percentile-bootstrap interval of `mean(a) / mean(b)` over paired items
/// (resampling indices with replacement; `seed` fixes the draws). NaN bounds when `b`'s
/// resampled mean is 0.
pub fn ratio_of_means_ci(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> [f64; 2] {
    assert_eq!(a.len(), b.len(), "paired samples");
    let n = a.len();
    if n == 0 {
        return [f64::NAN; 2];
    }
    let mut rng = unas_space::rng::Rng::seed(seed);
    let mut ratios: Vec<f64> = (0..resamples)
        .map(|_| {
            let (mut sa, mut sb) = (0.0, 0.0);
            for _ in 0..n {
                let i = rng.below(n);
                sa += a[i];
                sb += b[i];
            }
            if sb > 0.0 {
                sa / sb
            } else {
                f64::NAN
            }
        })
        .collect();
    if ratios.iter().any(|r| r.is_nan()) {
        return [f64::NAN; 2];
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    [at(0.025), at(0.975)]
}

/// The first prefix length `k` (1-based) with `curve[k - 1] >= target`, if any.
pub fn first_reaching(curve: &[f64], target: f64) -> Option<usize> {
    curve.iter().position(|&h| h >= target).map(|i| i + 1)
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
        let mut s = "| strategy | mean hypervolume | vs random | 95 % CI (bootstrap over seeds) \
                     | trials to 95 % of best (mean over seeds reaching it) \
                     | duplicate trials per run (mean) | per seed |\n\
                     |---|---|---|---|---|---|---|\n"
            .to_string();
        for r in &self.strategies {
            let per: Vec<String> = r.hypervolumes.iter().map(|&h| significant(h)).collect();
            let reached: Vec<usize> = r.trials_to_95.iter().flatten().copied().collect();
            let to95 = if reached.is_empty() {
                format!("never (0/{})", r.trials_to_95.len())
            } else {
                format!(
                    "{:.1} ({}/{} seeds)",
                    reached.iter().sum::<usize>() as f64 / reached.len() as f64,
                    reached.len(),
                    r.trials_to_95.len()
                )
            };
            let duplicates =
                r.duplicates.iter().sum::<usize>() as f64 / r.duplicates.len().max(1) as f64;
            s.push_str(&format!(
                "| {} | {} | {:.3}x | [{:.3}, {:.3}] | {} | {:.1} | {} |\n",
                r.name,
                significant(r.mean),
                r.ratio_to_random,
                r.ratio_ci[0],
                r.ratio_ci[1],
                to95,
                duplicates,
                per.join(", ")
            ));
        }
        s
    }
}

/// `x` with 5 significant digits (hypervolumes span 1e-3 to 1e5 with the objective's scale).
pub fn significant(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (4 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
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
    // Hypervolume after each trial of each run (trials in number order).
    let curves: Vec<Vec<Vec<f64>>> = runs
        .iter()
        .map(|per_seed| {
            per_seed
                .iter()
                .map(|t| {
                    (1..=t.len())
                        .map(|k| Study::hypervolume_of(&t[..k], reference))
                        .collect()
                })
                .collect()
        })
        .collect();
    let final_hv = |curve: &Vec<f64>| curve.last().copied().unwrap_or(0.0);
    let best_per_seed: Vec<f64> = (0..seeds.len())
        .map(|j| curves.iter().map(|c| final_hv(&c[j])).fold(0.0, f64::max))
        .collect();
    let mut results: Vec<StrategyResult> = strategies
        .iter()
        .zip(&curves)
        .zip(&runs)
        .map(|((c, per_seed), trials)| {
            let hypervolumes: Vec<f64> = per_seed.iter().map(final_hv).collect();
            let mean = hypervolumes.iter().sum::<f64>() / hypervolumes.len() as f64;
            let trials_to_95 = per_seed
                .iter()
                .zip(&best_per_seed)
                .map(|(curve, &best)| {
                    if best > 0.0 {
                        first_reaching(curve, 0.95 * best)
                    } else {
                        None
                    }
                })
                .collect();
            StrategyResult {
                name: c.name().to_string(),
                controller: c.clone(),
                hypervolumes,
                mean,
                ratio_to_random: f64::NAN,
                ratio_ci: [f64::NAN; 2],
                trials_to_95,
                duplicates: trials
                    .iter()
                    .map(|t| t.iter().filter(|t| t.duplicate_of.is_some()).count())
                    .collect(),
            }
        })
        .collect();
    let random_mean = results[random_idx].mean;
    let random_hv = results[random_idx].hypervolumes.clone();
    for r in &mut results {
        r.ratio_to_random = if random_mean > 0.0 {
            r.mean / random_mean
        } else {
            f64::NAN
        };
        r.ratio_ci = ratio_of_means_ci(&r.hypervolumes, &random_hv, BOOTSTRAP_RESAMPLES, 0x5EED);
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

#[cfg(test)]
mod tests {
    use super::{first_reaching, ratio_of_means_ci, significant};

    #[test]
    fn five_significant_digits() {
        assert_eq!(significant(0.0027312), "0.0027312");
        assert_eq!(significant(42028.7527), "42029");
        assert_eq!(significant(1.5), "1.5000");
        assert_eq!(significant(0.0), "0");
    }

    #[test]
    fn the_ratio_ci_brackets_paired_ratios() {
        let b = [10.0, 20.0, 30.0, 40.0];
        // Identical runs: every resample gives 1.
        assert_eq!(ratio_of_means_ci(&b, &b, 500, 1), [1.0, 1.0]);
        // Twice as good on every seed: every resample gives 2.
        let a: Vec<f64> = b.iter().map(|x| 2.0 * x).collect();
        assert_eq!(ratio_of_means_ci(&a, &b, 500, 1), [2.0, 2.0]);
        // Mixed: the interval lies within the smallest and largest per-seed ratios' span of
        // means, and is not a point.
        let c = [5.0, 40.0, 30.0, 60.0];
        let [lo, hi] = ratio_of_means_ci(&c, &b, 2000, 1);
        assert!(lo < 135.0 / 100.0 && 135.0 / 100.0 < hi, "[{lo}, {hi}]");
        assert!(lo >= 0.5 && hi <= 2.0, "[{lo}, {hi}]");
        // The same seed gives the same interval.
        assert_eq!(ratio_of_means_ci(&c, &b, 2000, 1), [lo, hi]);
    }

    #[test]
    fn first_reaching_counts_trials_from_one() {
        let curve = [0.0, 1.0, 1.0, 3.0, 4.0];
        assert_eq!(first_reaching(&curve, 0.0), Some(1));
        assert_eq!(first_reaching(&curve, 1.0), Some(2));
        assert_eq!(first_reaching(&curve, 2.5), Some(4));
        assert_eq!(first_reaching(&curve, 4.5), None);
    }
}
