//! Successive-halving rungs: each quality evaluation of a trial at one fidelity is a row of
//! its own, `(study, number, rung)`, so every rung's score is stored and no rung of a trial is
//! evaluated twice (the key is unique). Rung 0 is the trial's own evaluation; a promotion
//! inserts a pending row at the next rung, which a runner or a worker then evaluates.

use super::lease::Leases;
use super::param::{sql_int, Param};
use super::{now_ms, sql, Requeued, TrialStatus};
use crate::error::SearchError;

/// A rung row.
#[derive(Clone, Debug, PartialEq)]
pub struct RungRecord {
    /// Study name.
    pub study: String,
    /// Trial number.
    pub number: u64,
    /// Rung (0 = the trial's own evaluation).
    pub rung: u32,
    /// `pending`, `running`, `done` or `failed`.
    pub status: TrialStatus,
    /// The quality score at this rung (lower is better), when done.
    pub score: Option<f64>,
    /// The evaluator's result (JSON of [`crate::QualityResult`]), when done.
    pub quality: Option<String>,
    /// Seconds spent evaluating.
    pub quality_s: Option<f64>,
    /// Times the rung was started.
    pub attempts: u32,
    /// Why it failed.
    pub error: Option<String>,
    /// Worker id of the last claim (external workers).
    pub worker: Option<String>,
    /// Last heartbeat of that worker (store clock, Unix ms).
    pub heartbeat_ms: Option<i64>,
    /// When inserted (Unix ms).
    pub created_ms: i64,
    /// When last started.
    pub started_ms: Option<i64>,
    /// When finished.
    pub finished_ms: Option<i64>,
}

impl RungRecord {
    /// A new pending rung row of trial `number`.
    pub fn pending(study: &str, number: u64, rung: u32) -> Self {
        Self {
            study: study.into(),
            number,
            rung,
            status: TrialStatus::Pending,
            score: None,
            quality: None,
            quality_s: None,
            attempts: 0,
            error: None,
            worker: None,
            heartbeat_ms: None,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
        }
    }

    /// The key columns `(number, rung)` in their SQL types (`BIGINT`, `INTEGER`).
    pub(crate) fn sql_key(&self) -> (i64, i32) {
        (self.number as i64, sql_int(self.rung))
    }
}

/// Storage of rung rows, beside the trials of [`super::Store`]; the same durability and
/// lease rules as trials. The lease upkeep of both (heartbeats, requeues of lost work) is
/// written once, in default methods over a sealed supertrait that the crate's SQL stores
/// implement.
pub trait RungStore: Leases {
    /// Every rung row of a study, by (number, rung).
    fn rungs(&mut self, study: &str) -> Result<Vec<RungRecord>, SearchError>;
    /// Inserts a rung row as given (every column); fails when the row exists.
    fn insert_rung(&mut self, rung: &RungRecord) -> Result<(), SearchError>;
    /// Marks a rung row running and counts the attempt.
    fn start_rung(&mut self, rung: &RungRecord, now_ms: i64) -> Result<(), SearchError>;
    /// Writes a rung's result (status, score, quality, times, error); with `worker`, only
    /// while that worker holds it (`false`, nothing written, otherwise).
    fn finish_rung(&mut self, rung: &RungRecord, worker: Option<&str>)
        -> Result<bool, SearchError>;
    /// Atomically claims the pending rung row of the highest rung (lowest number first) for
    /// `worker`, as [`super::Store::claim_trial`] claims trials.
    fn claim_rung(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<RungRecord>, SearchError>;
    /// Renews `worker`'s lease on a running rung row; `false` when it no longer holds it.
    fn rung_heartbeat(
        &mut self,
        rung: &RungRecord,
        worker: &str,
        now_ms: i64,
    ) -> Result<bool, SearchError> {
        let (number, k) = rung.sql_key();
        let args: [&dyn Param; 5] = [&now_ms, &rung.study, &number, &k, &worker];
        self.renew("rung heartbeat", sql::RUNG_HEARTBEAT, &args)
    }
    /// Returns every running rung row of a study to pending; returns how many.
    fn requeue_running_rungs(&mut self, study: &str) -> Result<usize, SearchError>;
    /// Running rung rows whose heartbeat is older than `stale_before_ms` go back to pending,
    /// or fail at `max_attempts`, as [`super::Store::requeue_stale`] does for trials.
    fn requeue_stale_rungs(
        &mut self,
        study: &str,
        stale_before_ms: i64,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<Requeued, SearchError> {
        let stale = (stale_before_ms, max_attempts, now_ms);
        self.requeue_lost(
            study,
            stale,
            [sql::FAIL_STALE_RUNGS, sql::REQUEUE_STALE_RUNGS],
        )
    }
}
