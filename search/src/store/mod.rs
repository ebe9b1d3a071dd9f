//! The trial store: the only state of a study. [`Store`] is the interface; [`SqliteStore`] the
//! default implementation (one file in the run directory) and [`PostgresStore`] the one for
//! studies spread over several machines (`postgres://…`). [`open_store`] picks one from a path
//! or URL. The schema and queries in [`sql`] are portable SQL written with PostgreSQL's `$1`
//! placeholders (the SQLite implementation rewrites them to SQLite's equivalent `?1`); both
//! implementations run the same migrations, and the trial and rung methods are written once
//! for both (`dialect`), each database saying only how it runs a statement, reads a row and
//! opens a transaction.
//!
//! A trial's id is `(study, number)`; timestamps are Unix milliseconds (UTC); `u64` values
//! (seeds) are stored bit-cast in `BIGINT` columns.
//!
//! Workers (see [`crate::runner::worker`]) *claim* pending trials ([`Store::claim_trial`]: PostgreSQL
//! uses `SELECT … FOR UPDATE SKIP LOCKED`, SQLite a `BEGIN IMMEDIATE` transaction), keep a
//! *lease* on them by heart-beating ([`Store::heartbeat`]) and write results only while they
//! hold the lease ([`Store::finish_claimed`]). [`Store::requeue_stale`] returns trials whose
//! heartbeat is older than a grace period to pending, or fails them after a retry limit.

mod copy;
mod dialect;
mod lease;
mod param;
mod postgres;
mod record;
mod rung;
pub mod sql;
mod sqlite;
mod url;

pub use copy::{copy_store, CopySummary};
pub use lease::{Lease, Requeued};
pub use postgres::PostgresStore;
pub use record::{StudyRecord, TrialRecord, TrialStatus};
pub use rung::{RungRecord, RungStore};
pub use sql::sqlite_placeholders;
pub use sqlite::SqliteStore;
pub use url::{open_store, open_store_read_only, redact_url};

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::SearchError;
use param::Param;

/// Persistent storage of studies and trials. Every write is durable when the call returns, so
/// a process killed at any moment loses nothing that was reported as written. Implemented by
/// [`SqliteStore`] and [`PostgresStore`] only (sealed through [`RungStore`]'s supertrait).
pub trait Store: RungStore + Send {
    /// The database file or URL (for messages; never contains credentials).
    fn location(&self) -> String;
    /// Applied schema version.
    fn schema_version(&mut self) -> Result<i64, SearchError>;
    /// Creates a study row (fails if the name exists).
    fn create_study(&mut self, study: &StudyRecord) -> Result<(), SearchError>;
    /// A study by name.
    fn study(&mut self, name: &str) -> Result<Option<StudyRecord>, SearchError>;
    /// All study names, oldest first.
    fn study_names(&mut self) -> Result<Vec<String>, SearchError>;
    /// All trials of a study ordered by number.
    fn trials(&mut self, study: &str) -> Result<Vec<TrialRecord>, SearchError>;
    /// Inserts a new (pending) trial.
    fn insert_trial(&mut self, trial: &TrialRecord) -> Result<(), SearchError>;
    /// Marks a trial running and counts the attempt.
    fn mark_running(
        &mut self,
        study: &str,
        number: u64,
        started_ms: i64,
    ) -> Result<(), SearchError>;
    /// Writes a trial's result columns (status, objectives, timings, error) in one statement.
    fn finish_trial(&mut self, trial: &TrialRecord) -> Result<(), SearchError>;
    /// Returns every `running` trial of a study to `pending` (after an interrupted run);
    /// returns how many.
    fn requeue_running(&mut self, study: &str) -> Result<usize, SearchError>;

    /// The store's clock in Unix ms: the database server's for PostgreSQL (so that leases do
    /// not depend on the workers' clocks agreeing), this machine's for SQLite.
    fn clock_ms(&mut self) -> Result<i64, SearchError>;
    /// Atomically claims the lowest-numbered pending trial of a study that is not a duplicate:
    /// marks it `running` for `worker` with a heartbeat at `now_ms`, counts the attempt and
    /// returns it (as updated). `None` when no trial is pending. Two concurrent callers never
    /// get the same trial.
    fn claim_trial(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<TrialRecord>, SearchError>;
    /// Renews `worker`'s lease on a running trial; `false` when the worker no longer holds it
    /// (the trial was requeued or finished), in which case it should stop and discard it.
    fn heartbeat(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        now_ms: i64,
    ) -> Result<bool, SearchError> {
        let number = number as i64;
        let args: [&dyn Param; 4] = [&now_ms, &study, &number, &worker];
        self.renew("heartbeat", sql::HEARTBEAT, &args)
    }
    /// Like [`Store::finish_trial`], but only while `worker` holds the trial's lease (status
    /// `running`, same worker); `false` (and nothing written) otherwise. A trial is therefore
    /// finished at most once even when a worker thought dead comes back.
    fn finish_claimed(&mut self, trial: &TrialRecord, worker: &str) -> Result<bool, SearchError>;
    /// Running trials of a study whose heartbeat is older than `stale_before_ms` lost their
    /// worker: those with fewer than `max_attempts` attempts go back to `pending`, the others
    /// become `failed` with the reason. Trials run in-process (no heartbeat) are never touched.
    fn requeue_stale(
        &mut self,
        study: &str,
        stale_before_ms: i64,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<Requeued, SearchError> {
        let stale = (stale_before_ms, max_attempts, now_ms);
        self.requeue_lost(study, stale, [sql::FAIL_STALE, sql::REQUEUE_STALE])
    }
    /// The worker and last heartbeat of every trial of a study that was ever claimed, by
    /// number (columns outside [`TrialRecord`]; for copies and diagnostics).
    fn leases(&mut self, study: &str) -> Result<Vec<Lease>, SearchError>;
    /// Writes a study, its trials and their leases in one transaction (the target of
    /// [`copy_store`]); fails, writing nothing, if the study exists.
    fn import_study(
        &mut self,
        study: &StudyRecord,
        trials: &[TrialRecord],
        leases: &[Lease],
    ) -> Result<(), SearchError>;
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
