//! The trial store: the only state of a study. [`Store`] is the interface; [`SqliteStore`] the
//! default implementation (one file in the run directory) and [`PostgresStore`] the one for
//! studies spread over several machines (`postgres://…`). [`open_store`] picks one from a path
//! or URL. The schema and queries in [`sql`] are portable SQL written with PostgreSQL's `$1`
//! placeholders (the SQLite implementation rewrites them to SQLite's equivalent `?1`); both
//! implementations run the same migrations.
//!
//! A trial's id is `(study, number)`; timestamps are Unix milliseconds (UTC); `u64` values
//! (seeds) are stored bit-cast in `BIGINT` columns.
//!
//! Workers (see [`crate::worker`]) *claim* pending trials ([`Store::claim_trial`]: PostgreSQL
//! uses `SELECT … FOR UPDATE SKIP LOCKED`, SQLite a `BEGIN IMMEDIATE` transaction), keep a
//! *lease* on them by heart-beating ([`Store::heartbeat`]) and write results only while they
//! hold the lease ([`Store::finish_claimed`]). [`Store::requeue_stale`] returns trials whose
//! heartbeat is older than a grace period to pending, or fails them after a retry limit.

mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use unas_space::UNetArch;

use crate::error::SearchError;

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
    /// How the controller made it (JSON, see [`crate::controller::Origin`]).
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

/// Persistent storage of studies and trials. Every write is durable when the call returns, so
/// a process killed at any moment loses nothing that was reported as written.
pub trait Store: Send {
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
    ) -> Result<bool, SearchError>;
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
    ) -> Result<Requeued, SearchError>;
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

/// What [`Store::requeue_stale`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Trials returned to `pending`.
    pub pending: usize,
    /// Trials failed because they reached the retry limit.
    pub failed: usize,
}

/// The worker columns of a claimed trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Trial number.
    pub number: u64,
    /// Worker id (`host:pid:nonce`) of the last claim.
    pub worker: Option<String>,
    /// Last heartbeat (store clock, Unix ms).
    pub heartbeat_ms: Option<i64>,
}

/// Opens a trial store from a path or URL:
/// - `postgres://user:password@host:port/database` (or `postgresql://`): a [`PostgresStore`];
/// - `sqlite://PATH` or a plain path: a [`SqliteStore`] (a directory means its `study.sqlite`).
///
/// Errors never contain the password.
pub fn open_store(spec: &str) -> Result<Box<dyn Store>, SearchError> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        return Ok(Box::new(PostgresStore::connect(spec)?));
    }
    if let Some((scheme, _)) = spec.split_once("://") {
        if scheme != "sqlite" {
            return Err(SearchError::Store {
                location: redact_url(spec),
                message: format!(
                    "unknown store scheme `{scheme}://` (use postgres://user:password@host:port/database, sqlite://FILE or a path)"
                ),
            });
        }
    }
    let path = Path::new(spec.strip_prefix("sqlite://").unwrap_or(spec));
    let file = if path.is_dir() {
        SqliteStore::file_in(path)
    } else {
        path.to_path_buf()
    };
    Ok(Box::new(SqliteStore::open(&file)?))
}

/// What [`copy_store`] copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopySummary {
    /// Studies copied.
    pub studies: Vec<String>,
    /// Trials copied.
    pub trials: usize,
}

/// Copies studies (all when `only` is empty) with every trial, column and lease from one store
/// to another, each study in one transaction, then reads the copy back and checks it equals
/// the source. Refuses studies that already exist in the target.
pub fn copy_store(
    from: &mut dyn Store,
    to: &mut dyn Store,
    only: &[String],
) -> Result<CopySummary, SearchError> {
    let names = if only.is_empty() {
        from.study_names()?
    } else {
        only.to_vec()
    };
    let mut summary = CopySummary::default();
    for name in &names {
        let study = from.study(name)?.ok_or_else(|| SearchError::Store {
            location: from.location(),
            message: format!("no study named `{name}`"),
        })?;
        if to.study(name)?.is_some() {
            return Err(SearchError::Store {
                location: to.location(),
                message: format!("already holds a study named `{name}`; nothing copied for it"),
            });
        }
        let trials = from.trials(name)?;
        let leases = from.leases(name)?;
        to.import_study(&study, &trials, &leases)?;
        let (s2, t2, l2) = (to.study(name)?, to.trials(name)?, to.leases(name)?);
        if s2.as_ref() != Some(&study) || t2 != trials || l2 != leases {
            return Err(SearchError::Store {
                location: to.location(),
                message: format!("study `{name}`: the copy reads back differently from the source"),
            });
        }
        summary.trials += trials.len();
        summary.studies.push(name.clone());
    }
    Ok(summary)
}

/// A store URL with the password (and any `password=` parameter) removed, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|kv| {
                    if kv.to_ascii_lowercase().starts_with("password=") {
                        "password=***".to_string()
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Portable SQL shared by the store implementations.
pub mod sql {
    /// Creates the version table (idempotent).
    pub const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
        version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";
    /// Current schema version.
    pub const CURRENT_VERSION: &str = "SELECT MAX(version) FROM schema_version";
    /// Records an applied migration.
    pub const RECORD_VERSION: &str =
        "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)";

    /// Migrations in order: (version, statements). Never edit a released one; append.
    pub const MIGRATIONS: &[(i64, &[&str])] = &[
        (
            1,
            &[
                "CREATE TABLE studies (\
                    name TEXT PRIMARY KEY, \
                    settings TEXT NOT NULL, \
                    seed BIGINT NOT NULL, \
                    created_ms BIGINT NOT NULL)",
                "CREATE TABLE trials (\
                    study TEXT NOT NULL REFERENCES studies (name), \
                    number BIGINT NOT NULL, \
                    hash TEXT NOT NULL, \
                    arch TEXT NOT NULL, \
                    origin TEXT NOT NULL, \
                    status TEXT NOT NULL CHECK (status IN \
                        ('pending', 'running', 'done', 'failed', 'infeasible')), \
                    duplicate_of BIGINT, \
                    latency_ms DOUBLE PRECISION, \
                    quality DOUBLE PRECISION, \
                    params BIGINT, \
                    macs BIGINT, \
                    violation DOUBLE PRECISION, \
                    objectives TEXT, \
                    block_latency TEXT, \
                    eval_seed BIGINT NOT NULL, \
                    latency_s DOUBLE PRECISION, \
                    quality_s DOUBLE PRECISION, \
                    attempts INTEGER NOT NULL DEFAULT 0, \
                    error TEXT, \
                    created_ms BIGINT NOT NULL, \
                    started_ms BIGINT, \
                    finished_ms BIGINT, \
                    PRIMARY KEY (study, number))",
            ],
        ),
        (
            2,
            &[
                "CREATE INDEX trials_by_status ON trials (study, status)",
                "CREATE INDEX trials_by_hash ON trials (study, hash)",
            ],
        ),
        (
            3,
            &[
                "ALTER TABLE trials ADD COLUMN worker TEXT",
                "ALTER TABLE trials ADD COLUMN heartbeat_ms BIGINT",
            ],
        ),
    ];

    /// Inserts a study.
    pub const INSERT_STUDY: &str =
        "INSERT INTO studies (name, settings, seed, created_ms) VALUES ($1, $2, $3, $4)";
    /// One study.
    pub const SELECT_STUDY: &str =
        "SELECT name, settings, seed, created_ms FROM studies WHERE name = $1";
    /// Study names.
    pub const STUDY_NAMES: &str = "SELECT name FROM studies ORDER BY created_ms, name";
    /// The columns of a trial, written once for the statements that list them all.
    macro_rules! trial_columns {
        () => {
            "study, number, hash, arch, origin, status, duplicate_of, latency_ms, quality, \
             params, macs, violation, objectives, block_latency, eval_seed, latency_s, \
             quality_s, attempts, error, created_ms, started_ms, finished_ms"
        };
    }
    /// Trials of a study (every column, in the order `INSERT_TRIAL` writes them).
    pub const SELECT_TRIALS: &str = concat!(
        "SELECT ",
        trial_columns!(),
        " FROM trials WHERE study = $1 ORDER BY number"
    );
    /// Inserts a trial (every column).
    pub const INSERT_TRIAL: &str = concat!(
        "INSERT INTO trials (",
        trial_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
         $17, $18, $19, $20, $21, $22)"
    );
    /// Marks a trial running.
    pub const MARK_RUNNING: &str = "UPDATE trials SET status = 'running', \
        attempts = attempts + 1, started_ms = $1 WHERE study = $2 AND number = $3";
    /// Writes a result.
    pub const FINISH_TRIAL: &str = "UPDATE trials SET status = $1, latency_ms = $2, \
        quality = $3, params = $4, macs = $5, violation = $6, objectives = $7, \
        block_latency = $8, latency_s = $9, quality_s = $10, error = $11, started_ms = $12, \
        finished_ms = $13 WHERE study = $14 AND number = $15";
    /// Returns interrupted trials to pending.
    pub const REQUEUE_RUNNING: &str =
        "UPDATE trials SET status = 'pending' WHERE study = $1 AND status = 'running'";
    /// One trial (columns as [`SELECT_TRIALS`]).
    pub const SELECT_TRIAL: &str = "SELECT study, number, hash, arch, origin, status, \
        duplicate_of, latency_ms, quality, params, macs, violation, objectives, block_latency, \
        eval_seed, latency_s, quality_s, attempts, error, created_ms, started_ms, finished_ms \
        FROM trials WHERE study = $1 AND number = $2";
    /// The next claimable trial (PostgreSQL appends `FOR UPDATE SKIP LOCKED`).
    pub const CLAIM_SELECT: &str = "SELECT number FROM trials WHERE study = $1 \
        AND status = 'pending' AND duplicate_of IS NULL ORDER BY number LIMIT 1";
    /// Claims it.
    pub const CLAIM_UPDATE: &str = "UPDATE trials SET status = 'running', \
        attempts = attempts + 1, started_ms = $1, heartbeat_ms = $1, worker = $2 \
        WHERE study = $3 AND number = $4 AND status = 'pending'";
    /// Renews a lease.
    pub const HEARTBEAT: &str = "UPDATE trials SET heartbeat_ms = $1 \
        WHERE study = $2 AND number = $3 AND status = 'running' AND worker = $4";
    /// Writes a result while holding the lease.
    pub const FINISH_CLAIMED: &str = "UPDATE trials SET status = $1, latency_ms = $2, \
        quality = $3, params = $4, macs = $5, violation = $6, objectives = $7, \
        block_latency = $8, latency_s = $9, quality_s = $10, error = $11, started_ms = $12, \
        finished_ms = $13 WHERE study = $14 AND number = $15 AND status = 'running' \
        AND worker = $16";
    /// Fails stale trials at the retry limit (`$1` is the reason's prefix).
    pub const FAIL_STALE: &str = "UPDATE trials SET status = 'failed', \
        error = $1 || COALESCE(worker, 'unknown') || $2, finished_ms = $3 \
        WHERE study = $4 AND status = 'running' AND heartbeat_ms < $5 AND attempts >= $6";
    /// Returns the other stale trials to pending.
    pub const REQUEUE_STALE: &str = "UPDATE trials SET status = 'pending' \
        WHERE study = $1 AND status = 'running' AND heartbeat_ms < $2";
    /// Worker columns of claimed trials.
    pub const SELECT_LEASES: &str = "SELECT number, worker, heartbeat_ms FROM trials \
        WHERE study = $1 AND (worker IS NOT NULL OR heartbeat_ms IS NOT NULL) ORDER BY number";
    /// Sets them (copies).
    pub const SET_LEASE: &str =
        "UPDATE trials SET worker = $1, heartbeat_ms = $2 WHERE study = $3 AND number = $4";
}

/// The reason a stale trial at the retry limit fails with: `(prefix, suffix)` around the
/// worker id.
pub(crate) fn stale_reason(max_attempts: u32, grace_ms: i64) -> (String, String) {
    (
        "worker lost: no heartbeat from worker ".to_string(),
        format!(
            " within the grace period ({:.1} s); gave up after {max_attempts} attempts",
            grace_ms as f64 / 1000.0
        ),
    )
}

/// Rewrites PostgreSQL placeholders (`$1`) into SQLite's numbered ones (`?1`).
pub fn sqlite_placeholders(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut chars = query.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
