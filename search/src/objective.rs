//! Objectives and constraints of a candidate: cost (params, MACs) and latency are predicted
//! first; a candidate that violates a constraint by prediction is recorded as infeasible and
//! never evaluated for quality. Quality comes from a [`QualityEvaluator`] (lower is better).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use unas_evaluator::latency::{LatencyModel, LatencySetting};
use unas_space::{CostQuery, UNetArch};

use crate::config::{ConstraintsConfig, LatencyConfig};
use crate::store::{RungRecord, TrialStatus};

/// A quality score (lower is better, e.g. a Fréchet distance) and its details.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct QualityResult {
    /// The score that is minimised.
    pub score: f64,
    /// What the score is (`fd-proxy@...`), for reports.
    pub metric: String,
    /// Further numbers worth keeping (KID, training loss, steps...).
    #[serde(default)]
    pub details: BTreeMap<String, f64>,
}

/// Why a quality evaluation failed. The trial is recorded as failed with this reason and the
/// search goes on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// The evaluation ran out of (device) memory.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// Training diverged (NaN or infinite loss).
    #[error("diverged: {0}")]
    Diverged(String),
    /// Any other failure.
    #[error("{0}")]
    Failed(String),
}

/// A quality evaluation's result.
pub type Scored = Result<QualityResult, QualityError>;

/// Scores a candidate's quality. Implementations must be deterministic given `seed` for
/// resumed studies to reproduce; the seed is derived from the study seed and the arch hash.
pub trait QualityEvaluator {
    /// Short description for logs and reports.
    fn describe(&self) -> String;
    /// Scores `arch` (lower is better).
    fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<QualityResult, QualityError>;
    /// Fidelities offered to successive halving (default 1: none): rung 0 is [`Self::evaluate`],
    /// each later rung a costlier, more faithful score of the same candidate.
    fn rungs(&self) -> usize {
        1
    }
    /// Scores `arch` at fidelity `rung` (below [`Self::rungs`]); rung 0 is [`Self::evaluate`].
    fn evaluate_rung(&self, arch: &UNetArch, seed: u64, rung: usize) -> Scored {
        match rung {
            0 => self.evaluate(arch, seed),
            _ => Err(QualityError::Failed(format!(
                "{} has no rung {rung}",
                self.describe()
            ))),
        }
    }
}

/// The evaluators a study runs with.
#[derive(Clone, Copy)]
pub struct Evaluators<'a> {
    /// Latency of one denoising step.
    pub latency: &'a (dyn LatencyModel + Sync),
    /// Quality of a candidate.
    pub quality: &'a (dyn QualityEvaluator + Sync),
}

/// Relative violation of each constraint: `(value - cap) / cap` where positive, else 0.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Violations {
    /// Latency over `budget_ms`.
    pub latency: f64,
    /// Parameters over `max_params`.
    pub params: f64,
    /// MACs over `max_macs`.
    pub macs: f64,
}

impl Violations {
    /// Sum of the relative violations (0 = feasible).
    pub fn total(&self) -> f64 {
        self.latency + self.params + self.macs
    }

    /// The violated constraints in words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (name, v) in [
            ("latency", self.latency),
            ("params", self.params),
            ("macs", self.macs),
        ] {
            if v > 0.0 {
                parts.push(format!("{name} {:.1}% over the cap", v * 100.0));
            }
        }
        format!("infeasible by prediction: {}", parts.join(", "))
    }
}

/// Everything stored in a trial's `objectives` column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ObjectivesJson {
    /// Latency objective (ms): per U-Net step, or per image in a time-to-image study.
    pub latency_ms: Option<f64>,
    /// One U-Net step (ms), kept beside a per-image `latency_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_ms: Option<f64>,
    /// Quality score.
    pub quality: Option<f64>,
    /// Parameters.
    pub params: Option<u64>,
    /// MACs.
    pub macs: Option<u64>,
    /// Per-constraint violations.
    pub violations: Violations,
    /// Quality details from the evaluator.
    pub quality_result: Option<QualityResult>,
    /// Latency model (`profile:a10g`).
    pub latency_source: Option<String>,
}

/// One block's latency in the `block_latency` column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BlockLatencyJson {
    /// Weight-key prefix.
    pub key: String,
    /// Section (`Down`, `Mid`, ...).
    pub section: String,
    /// Module type.
    pub kind: String,
    /// Milliseconds.
    pub ms: f64,
}

/// The result of evaluating one candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `Done`, `Failed` or `Infeasible`.
    pub status: TrialStatus,
    /// Predicted latency objective (per step, or per image in a time-to-image study).
    pub latency_ms: Option<f64>,
    /// Predicted U-Net step, when `latency_ms` is per image.
    pub step_ms: Option<f64>,
    /// Parameters.
    pub params: Option<u64>,
    /// MACs.
    pub macs: Option<u64>,
    /// Violations.
    pub violations: Violations,
    /// Quality, when evaluated.
    pub quality: Option<QualityResult>,
    /// Per-block latency.
    pub blocks: Vec<BlockLatencyJson>,
    /// Latency model source.
    pub latency_source: Option<String>,
    /// Failure reason or violated constraints.
    pub error: Option<String>,
    /// Seconds for cost and latency prediction.
    pub latency_s: f64,
    /// Seconds for quality evaluation.
    pub quality_s: f64,
    /// Whether the quality evaluator was called.
    pub quality_evaluated: bool,
}

impl Outcome {
    fn failed(reason: String, latency_s: f64) -> Self {
        Self {
            status: TrialStatus::Failed,
            latency_ms: None,
            step_ms: None,
            params: None,
            macs: None,
            violations: Violations::default(),
            quality: None,
            blocks: Vec::new(),
            latency_source: None,
            error: Some(reason),
            latency_s,
            quality_s: 0.0,
            quality_evaluated: false,
        }
    }

    /// The `objectives` JSON.
    pub fn objectives_json(&self) -> String {
        serde_json::to_string(&ObjectivesJson {
            latency_ms: self.latency_ms,
            step_ms: self.step_ms,
            quality: self.quality.as_ref().map(|q| q.score),
            params: self.params,
            macs: self.macs,
            violations: self.violations.clone(),
            quality_result: self.quality.clone(),
            latency_source: self.latency_source.clone(),
        })
        .expect("objectives serialise")
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

fn excess(value: f64, cap: f64) -> f64 {
    if value > cap {
        (value - cap) / cap
    } else {
        0.0
    }
}

/// Evaluates one candidate: cost, latency, constraints (cheap, first), then quality only when
/// every constraint holds. Panics, errors and non-finite scores become `Failed` outcomes.
pub fn evaluate_candidate(
    arch: &UNetArch,
    eval_seed: u64,
    latency: &LatencyConfig,
    constraints: &ConstraintsConfig,
    ev: Evaluators<'_>,
) -> Outcome {
    let t0 = Instant::now();
    let setting: LatencySetting = latency.setting();
    let predicted = catch_unwind(AssertUnwindSafe(|| {
        let plan = arch
            .plan()
            .map_err(|e| format!("invalid architecture: {e}"))?;
        let cost = plan
            .cost(&CostQuery {
                height: setting.latent,
                width: setting.latent,
                batch: setting.batch,
                text_len: setting.text_len,
            })
            .map_err(|e| format!("cost model: {e}"))?;
        let report = ev
            .latency
            .predict(arch, &setting)
            .map_err(|e| format!("latency model: {e}"))?;
        Ok::<_, String>((cost, report))
    }));
    let latency_s = t0.elapsed().as_secs_f64();
    let (cost, report) = match predicted {
        Ok(Ok(x)) => x,
        Ok(Err(reason)) => return Outcome::failed(reason, latency_s),
        Err(p) => {
            return Outcome::failed(
                format!("panicked predicting latency: {}", panic_message(&*p)),
                latency_s,
            )
        }
    };
    if !report.total_ms.is_finite() || report.total_ms < 0.0 {
        return Outcome::failed(
            format!("latency model returned {} ms", report.total_ms),
            latency_s,
        );
    }
    let objective_ms = match latency.objective_ms(arch, report.total_ms) {
        Ok(ms) => ms,
        Err(reason) => return Outcome::failed(reason, latency_s),
    };
    let violations = Violations {
        latency: excess(objective_ms, latency.budget_ms),
        params: constraints
            .max_params
            .map_or(0.0, |m| excess(cost.params as f64, m as f64)),
        macs: constraints
            .max_macs
            .map_or(0.0, |m| excess(cost.macs as f64, m as f64)),
    };
    let mut out = Outcome {
        status: TrialStatus::Infeasible,
        latency_ms: Some(objective_ms),
        step_ms: latency.per_image().then_some(report.total_ms),
        params: Some(cost.params),
        macs: Some(cost.macs),
        violations,
        quality: None,
        blocks: report
            .blocks
            .iter()
            .map(|b| BlockLatencyJson {
                key: b.key.clone(),
                section: format!("{:?}", b.section),
                kind: b.kind.to_string(),
                ms: b.ms,
            })
            .collect(),
        latency_source: Some(report.source.clone()),
        error: None,
        latency_s,
        quality_s: 0.0,
        quality_evaluated: false,
    };
    if out.violations.total() > 0.0 {
        out.error = Some(out.violations.describe());
        return out;
    }
    let t1 = Instant::now();
    out.quality_evaluated = true;
    let q = catch_unwind(AssertUnwindSafe(|| ev.quality.evaluate(arch, eval_seed)));
    out.quality_s = t1.elapsed().as_secs_f64();
    match q {
        Ok(Ok(r)) if r.score.is_finite() => {
            out.status = TrialStatus::Done;
            out.quality = Some(r);
        }
        Ok(Ok(r)) => {
            out.status = TrialStatus::Failed;
            out.error = Some(format!("quality score is not finite ({})", r.score));
        }
        Ok(Err(e)) => {
            out.status = TrialStatus::Failed;
            out.error = Some(format!("quality evaluation failed: {e}"));
        }
        Err(p) => {
            out.status = TrialStatus::Failed;
            out.error = Some(format!(
                "quality evaluation panicked: {}",
                panic_message(&*p)
            ));
        }
    }
    out
}

/// Scores a trial's `arch` at rung `rung` into `r` (status, score, quality JSON, time, error):
/// quality only, cost and latency being known from rung 0. Panics, errors and non-finite
/// scores fail the rung, not the trial.
pub fn evaluate_rung(arch: &UNetArch, seed: u64, r: &mut RungRecord, ev: Evaluators<'_>) {
    let t0 = Instant::now();
    let q = catch_unwind(AssertUnwindSafe(|| {
        ev.quality.evaluate_rung(arch, seed, r.rung as usize)
    }));
    r.quality_s = Some(t0.elapsed().as_secs_f64());
    r.finished_ms = Some(crate::store::now_ms());
    let result = match q {
        Ok(Ok(q)) if q.score.is_finite() => Ok(q),
        Ok(Ok(q)) => Err(format!("quality score is not finite ({})", q.score)),
        Ok(Err(e)) => Err(format!("quality evaluation failed: {e}")),
        Err(p) => Err(format!(
            "quality evaluation panicked: {}",
            panic_message(&*p)
        )),
    };
    match result {
        Ok(q) => {
            r.status = TrialStatus::Done;
            r.score = Some(q.score);
            r.quality = Some(serde_json::to_string(&q).expect("quality serialises"));
        }
        Err(e) => {
            r.status = TrialStatus::Failed;
            r.error = Some(e);
        }
    }
}
