//! The rows of the store: [`StudyRecord`], [`TrialRecord`] and a trial's [`TrialStatus`].

use serde::{Deserialize, Serialize};
use unas_space::UNetArch;

use super::now_ms;

/// Lifecycle of a trial.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    /// Proposed, not started (or returned after an interrupted run).
    Pending,
    /// Being evaluated.
    Running,
    /// Evaluated: feasible, with a quality score.
    Done,
    /// Evaluation failed (error, panic, non-finite score); `error` says why.
    Failed,
    /// Violates a constraint by prediction; never evaluated for quality.
    Infeasible,
}

impl TrialStatus {
    /// Lower-case name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Pending => "pending",
            TrialStatus::Running => "running",
            TrialStatus::Done => "done",
            TrialStatus::Failed => "failed",
            TrialStatus::Infeasible => "infeasible",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => TrialStatus::Pending,
            "running" => TrialStatus::Running,
            "done" => TrialStatus::Done,
            "failed" => TrialStatus::Failed,
            "infeasible" => TrialStatus::Infeasible,
            _ => return None,
        })
    }

    /// Done, failed or infeasible: the trial will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TrialStatus::Done | TrialStatus::Failed | TrialStatus::Infeasible
        )
    }
}

/// A study row.
#[derive(Clone, Debug, PartialEq)]
pub struct StudyRecord {
    /// Unique name.
    pub name: String,
    /// Settings as JSON (the normalised [`crate::StudyConfig`] and the resolved space).
    pub settings: String,
    /// Study seed.
    pub seed: u64,
    /// Creation time (Unix ms).
    pub created_ms: i64,
}

/// A trial row.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialRecord {
    /// Study name.
    pub study: String,
    /// Trial number, 0-based, in proposal order.
    pub number: u64,
    /// [`UNetArch::hash_id`] of `arch`.
    pub hash: String,
    /// The candidate.
    pub arch: UNetArch,
    /// How the controller made it (JSON, see [`crate::strategy::Origin`]).
    pub origin: String,
    /// Lifecycle state.
    pub status: TrialStatus,
    /// The earlier trial with the same hash whose result this one reuses.
    pub duplicate_of: Option<u64>,
    /// Predicted latency of one denoising step (ms).
    pub latency_ms: Option<f64>,
    /// Quality score (lower is better); only for `done` trials.
    pub quality: Option<f64>,
    /// U-Net parameters.
    pub params: Option<u64>,
    /// MACs of one forward at the latency setting.
    pub macs: Option<u64>,
    /// Total relative constraint violation (0 = feasible).
    pub violation: Option<f64>,
    /// All objectives, per-constraint violations and quality details (JSON).
    pub objectives: Option<String>,
    /// Per-block latency (JSON list of `{key, section, kind, ms}`).
    pub block_latency: Option<String>,
    /// Seed passed to the quality evaluator.
    pub eval_seed: u64,
    /// Seconds spent predicting latency and cost.
    pub latency_s: Option<f64>,
    /// Seconds spent evaluating quality.
    pub quality_s: Option<f64>,
    /// Times the trial was started (more than 1 after interrupted runs).
    pub attempts: u32,
    /// Why it failed (or which constraint it violates).
    pub error: Option<String>,
    /// When proposed (Unix ms).
    pub created_ms: i64,
    /// When last started (Unix ms).
    pub started_ms: Option<i64>,
    /// When finished (Unix ms).
    pub finished_ms: Option<i64>,
}

impl TrialRecord {
    /// A new pending trial: every result field empty, no attempts, created now.
    pub fn pending(
        study: &str,
        number: u64,
        arch: UNetArch,
        origin: String,
        eval_seed: u64,
        duplicate_of: Option<u64>,
    ) -> Self {
        Self {
            study: study.to_string(),
            number,
            hash: arch.hash_id(),
            arch,
            origin,
            status: TrialStatus::Pending,
            duplicate_of,
            latency_ms: None,
            quality: None,
            params: None,
            macs: None,
            violation: None,
            objectives: None,
            block_latency: None,
            eval_seed,
            latency_s: None,
            quality_s: None,
            attempts: 0,
            error: None,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
        }
    }

    /// Takes the outcome of the trial `src` this one duplicates (status, objectives, error),
    /// with zero evaluation times, started and finished now.
    pub fn reuse_result_of(&mut self, src: &TrialRecord) {
        let now = now_ms();
        self.status = src.status;
        self.latency_ms = src.latency_ms;
        self.quality = src.quality;
        self.params = src.params;
        self.macs = src.macs;
        self.violation = src.violation;
        self.objectives = src.objectives.clone();
        self.block_latency = src.block_latency.clone();
        self.latency_s = Some(0.0);
        self.quality_s = Some(0.0);
        self.error = src.error.clone();
        self.started_ms = Some(now);
        self.finished_ms = Some(now);
    }
}
