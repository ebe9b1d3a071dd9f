//! **TEST FIXTURE — not a quality metric.** [`SyntheticQuality`] returns a deterministic
//! made-up "score" from an architecture's MACs and a hash-seeded term, optionally after a
//! sleep, so that tests and the strategy benchmark's plumbing can run without training. Never
//! report its numbers as quality.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use unas_space::{CostQuery, UNetArch};

use crate::objective::{QualityError, QualityEvaluator, QualityResult, Scored};
use crate::store::now_ms;
use crate::strategy::splitmix;

/// TEST FIXTURE (not a quality metric): score = `100 / sqrt(1 + MACs / 1e6) * (1 + 0.1 u)`
/// with `u` in [0, 1) drawn from the arch hash and the seed: bigger networks score better,
/// which trades off against latency like a real quality metric would. Rung `r` of successive
/// halving divides the noise term by `1 + r`. A candidate with `sampling_steps` K (a
/// time-to-image search) has its score multiplied by `1 + 5 / K`.
#[derive(Clone, Debug, Default)]
pub struct SyntheticQuality {
    /// MACs are counted for this query (default: 16x16 latent, batch 2, 16 tokens).
    pub query: Option<CostQuery>,
    /// Sleep this long per evaluation (so kills land mid-evaluation).
    pub delay_ms: u64,
    /// Fail (error) on archs whose hash value is divisible by this (0 = never).
    pub fail_one_in: u64,
    /// Panic on archs whose hash value (shifted) is divisible by this (0 = never).
    pub panic_one_in: u64,
    /// Return NaN on archs whose hash value (shifted) is divisible by this (0 = never).
    pub nan_one_in: u64,
    /// Append `<hash> <unix ms>` to this file at the start of every evaluation.
    pub log: Option<PathBuf>,
}

fn hash_value(arch: &UNetArch) -> u64 {
    u64::from_str_radix(&arch.hash_id(), 16).unwrap_or(0)
}

impl QualityEvaluator for SyntheticQuality {
    fn describe(&self) -> String {
        "synthetic TEST FIXTURE (not a quality metric)".into()
    }

    fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<QualityResult, QualityError> {
        self.evaluate_rung(arch, seed, 0)
    }

    /// Four rungs: rung `r`'s hash-seeded term is `0.1 u_r / (1 + r)`, a score that gets
    /// less noisy as the fidelity rises.
    fn rungs(&self) -> usize {
        4
    }

    fn evaluate_rung(&self, arch: &UNetArch, seed: u64, rung: usize) -> Scored {
        if rung >= self.rungs() {
            return Err(QualityError::Failed(format!("no rung {rung}")));
        }
        if let Some(path) = &self.log {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| QualityError::Failed(format!("{}: {e}", path.display())))?;
            // One write of one short line: atomic with O_APPEND.
            let key = match rung {
                0 => arch.hash_id(),
                r => format!("{}@{r}", arch.hash_id()),
            };
            f.write_all(format!("{key} {}\n", now_ms()).as_bytes())
                .map_err(|e| QualityError::Failed(e.to_string()))?;
        }
        if self.delay_ms > 0 {
            std::thread::sleep(Duration::from_millis(self.delay_ms));
        }
        let h = hash_value(arch);
        if self.fail_one_in > 0 && h.is_multiple_of(self.fail_one_in) {
            return Err(QualityError::Failed(
                "synthetic failure (test fixture)".into(),
            ));
        }
        if self.panic_one_in > 0 && (h >> 8).is_multiple_of(self.panic_one_in) {
            panic!("synthetic panic (test fixture)");
        }
        if self.nan_one_in > 0 && (h >> 16).is_multiple_of(self.nan_one_in) {
            return Ok(QualityResult {
                score: f64::NAN,
                metric: "synthetic-test-fixture".into(),
                details: Default::default(),
            });
        }
        let q = self.query.unwrap_or(CostQuery {
            height: 16,
            width: 16,
            batch: 2,
            text_len: 16,
        });
        let plan = arch
            .plan()
            .map_err(|e| QualityError::Failed(e.to_string()))?;
        let cost = plan
            .cost(&q)
            .map_err(|e| QualityError::Failed(e.to_string()))?;
        let draw = splitmix(h ^ seed ^ (rung as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
        let noise = 0.1 * u / (1.0 + rung as f64);
        // A time-to-image candidate scores worse with fewer sampling steps.
        let steps = arch.sampling_steps.map_or(1.0, |k| 1.0 + 5.0 / k as f64);
        let score = 100.0 / (1.0 + cost.macs as f64 / 1e6).sqrt() * (1.0 + noise) * steps;
        Ok(QualityResult {
            score,
            metric: "synthetic-test-fixture".into(),
            details: Default::default(),
        })
    }
}

/// Environment variable of the worker/search **test fixture hook**: when set to a number of
/// milliseconds, `unas worker` (and `unas search --workers external` tests) evaluate quality
/// with [`SyntheticQuality`] (that delay, no failures) instead of the study's configured
/// evaluator, so that integration tests can run distributed studies without training. Never
/// set it for real studies: the scores are not a quality metric.
pub const TEST_HOOK_ENV: &str = "UNAS_TEST_SYNTHETIC_QUALITY";
/// With [`TEST_HOOK_ENV`]: a file the fixture appends `<hash> <unix ms>` to per evaluation.
pub const TEST_HOOK_LOG_ENV: &str = "UNAS_TEST_SYNTHETIC_QUALITY_LOG";

impl SyntheticQuality {
    /// The TEST FIXTURE selected by [`TEST_HOOK_ENV`] (and [`TEST_HOOK_LOG_ENV`]); `Ok(None)`
    /// when the variable is unset, `Err` when it is not a number of milliseconds.
    pub fn from_test_env() -> Result<Option<Self>, String> {
        let Ok(v) = std::env::var(TEST_HOOK_ENV) else {
            return Ok(None);
        };
        let delay_ms = v.trim().parse::<u64>().map_err(|_| {
            format!("{TEST_HOOK_ENV}={v:?}: expected a delay in milliseconds (test fixture hook)")
        })?;
        Ok(Some(Self {
            delay_ms,
            log: std::env::var_os(TEST_HOOK_LOG_ENV).map(PathBuf::from),
            ..Default::default()
        }))
    }
}

/// TEST FIXTURE: [`SyntheticQuality`] that also counts evaluations per arch hash (`seen`), so
/// tests can check that nothing is evaluated twice.
#[derive(Debug, Default)]
pub struct CountingQuality {
    /// The scoring fixture.
    pub inner: SyntheticQuality,
    /// Evaluations per arch hash (rung 0) and per `hash@rung` (later rungs).
    pub seen: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl QualityEvaluator for CountingQuality {
    fn describe(&self) -> String {
        "counting TEST FIXTURE".into()
    }
    fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<QualityResult, QualityError> {
        self.evaluate_rung(arch, seed, 0)
    }
    fn rungs(&self) -> usize {
        self.inner.rungs()
    }
    fn evaluate_rung(&self, arch: &UNetArch, seed: u64, rung: usize) -> Scored {
        let key = match rung {
            0 => arch.hash_id(),
            r => format!("{}@{r}", arch.hash_id()),
        };
        *self
            .seen
            .lock()
            .expect("count lock")
            .entry(key)
            .or_insert(0) += 1;
        self.inner.evaluate_rung(arch, seed, rung)
    }
}

/// The study the search tests share: the `tiny` space, latency from the A10G roofline profile
/// (16x16 latents, batch 2, 16 tokens, f16) under a 1.75 ms budget, one job, no window, no
/// references, default quality settings.
pub fn tiny_study(
    name: &str,
    controller: crate::ControllerConfig,
    trials: usize,
    seed: u64,
) -> crate::StudyConfig {
    crate::StudyConfig {
        name: name.into(),
        space: "tiny".into(),
        controller,
        trials,
        latency: crate::LatencyConfig {
            model: "profile:a10g".into(),
            budget_ms: 1.75,
            budget_quantile: None,
            latent: 16,
            batch: 2,
            text_len: 16,
            dtype: unas_evaluator::latency::Dtype::F16,
            objective: Default::default(),
            sampling_steps: Vec::new(),
            reference_steps: None,
            image_parts: None,
        },
        constraints: crate::ConstraintsConfig::default(),
        seed,
        jobs: 1,
        window: None,
        quality_reference: None,
        quality: Default::default(),
        halving: None,
        references: Vec::new(),
    }
}
