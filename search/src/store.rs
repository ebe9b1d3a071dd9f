//! The trial store: the only state of a study. [`Store`] is the interface; [`SqliteStore`] the
//! default implementation (one file in the run directory). The schema and queries in [`sql`]
//! are portable SQL written with PostgreSQL's `$1` placeholders (the SQLite implementation
//! rewrites them to SQLite's equivalent `?1`), so a PostgreSQL store can reuse them unchanged.
//!
//! A trial's id is `(study, number)`; timestamps are Unix milliseconds (UTC); `u64` values
//! (seeds) are stored bit-cast in `BIGINT` columns.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
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
    ];

    /// Inserts a study.
    pub const INSERT_STUDY: &str =
        "INSERT INTO studies (name, settings, seed, created_ms) VALUES ($1, $2, $3, $4)";
    /// One study.
    pub const SELECT_STUDY: &str =
        "SELECT name, settings, seed, created_ms FROM studies WHERE name = $1";
    /// Study names.
    pub const STUDY_NAMES: &str = "SELECT name FROM studies ORDER BY created_ms, name";
    /// Columns of a trial, in the order [`SELECT_TRIALS`] returns them.
    pub const TRIAL_COLUMNS: &str = "study, number, hash, arch, origin, status, duplicate_of, \
        latency_ms, quality, params, macs, violation, objectives, block_latency, eval_seed, \
        latency_s, quality_s, attempts, error, created_ms, started_ms, finished_ms";
    /// Trials of a study.
    pub const SELECT_TRIALS: &str = "SELECT study, number, hash, arch, origin, status, \
        duplicate_of, latency_ms, quality, params, macs, violation, objectives, block_latency, \
        eval_seed, latency_s, quality_s, attempts, error, created_ms, started_ms, finished_ms \
        FROM trials WHERE study = $1 ORDER BY number";
    /// Inserts a trial (all columns, in [`TRIAL_COLUMNS`] order).
    pub const INSERT_TRIAL: &str = "INSERT INTO trials (study, number, hash, arch, origin, \
        status, duplicate_of, latency_ms, quality, params, macs, violation, objectives, \
        block_latency, eval_seed, latency_s, quality_s, attempts, error, created_ms, \
        started_ms, finished_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
        $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)";
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

/// The SQLite store: one database file (or memory).
pub struct SqliteStore {
    conn: Connection,
    location: String,
}

impl SqliteStore {
    /// Opens (creating if needed) a database file and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, SearchError> {
        let location = path.display().to_string();
        let conn = Connection::open(path).map_err(|e| SearchError::Store {
            location: location.clone(),
            message: e.to_string(),
        })?;
        let mut store = Self { conn, location };
        store.setup(true)?;
        Ok(store)
    }

    /// A private in-memory database (benchmarks, tests).
    pub fn in_memory() -> Result<Self, SearchError> {
        let conn = Connection::open_in_memory().map_err(|e| SearchError::Store {
            location: ":memory:".into(),
            message: e.to_string(),
        })?;
        let mut store = Self {
            conn,
            location: ":memory:".into(),
        };
        store.setup(false)?;
        Ok(store)
    }

    /// The database file of a run directory.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join("study.sqlite")
    }

    fn err(&self, e: impl std::fmt::Display) -> SearchError {
        SearchError::Store {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    fn setup(&mut self, file: bool) -> Result<(), SearchError> {
        self.conn
            .busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| self.err(e))?;
        if file {
            // WAL + NORMAL: a committed transaction survives the process being killed.
            self.conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| self.err(e))?;
            self.conn
                .pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| self.err(e))?;
        }
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))?;
        self.migrate(i64::MAX)
    }

    /// Applies migrations up to `target` (each in its own transaction, skipping those already
    /// recorded in `schema_version`); safe to call any number of times and from concurrent
    /// processes. Returns the version reached.
    pub fn migrate(&mut self, target: i64) -> Result<(), SearchError> {
        self.conn
            .execute(sql::VERSION_TABLE, [])
            .map_err(|e| self.err(e))?;
        let known = sql::MIGRATIONS.last().map_or(0, |m| m.0);
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Store {
            location: location.clone(),
            message: format!("migration: {e}"),
        };
        for (version, statements) in sql::MIGRATIONS {
            if *version > target {
                break;
            }
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(err)?;
            let current: Option<i64> = tx
                .query_row(sql::CURRENT_VERSION, [], |r| r.get(0))
                .map_err(err)?;
            let current = current.unwrap_or(0);
            if current > known {
                return Err(SearchError::SchemaTooNew {
                    location: self.location.clone(),
                    found: current,
                    known,
                });
            }
            if current >= *version {
                continue;
            }
            for s in *statements {
                tx.execute(s, []).map_err(err)?;
            }
            tx.execute(
                &sqlite_placeholders(sql::RECORD_VERSION),
                params![version, now_ms()],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        // A database from a newer build.
        let v = self.schema_version()?;
        if v > known {
            return Err(SearchError::SchemaTooNew {
                location: self.location.clone(),
                found: v,
                known,
            });
        }
        Ok(())
    }

    fn row_to_trial(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TrialRecord, String>> {
        let study: String = r.get(0)?;
        let number: i64 = r.get(1)?;
        let arch_text: String = r.get(3)?;
        let status_text: String = r.get(5)?;
        let arch = match serde_json::from_str::<UNetArch>(&arch_text) {
            Ok(a) => a,
            Err(e) => return Ok(Err(format!("{number}: arch: {e}"))),
        };
        let Some(status) = TrialStatus::parse(&status_text) else {
            return Ok(Err(format!("{number}: unknown status `{status_text}`")));
        };
        let u = |v: Option<i64>| v.map(|x| x as u64);
        Ok(Ok(TrialRecord {
            study,
            number: number as u64,
            hash: r.get(2)?,
            arch,
            origin: r.get(4)?,
            status,
            duplicate_of: u(r.get(6)?),
            latency_ms: r.get(7)?,
            quality: r.get(8)?,
            params: u(r.get(9)?),
            macs: u(r.get(10)?),
            violation: r.get(11)?,
            objectives: r.get(12)?,
            block_latency: r.get(13)?,
            eval_seed: r.get::<_, i64>(14)? as u64,
            latency_s: r.get(15)?,
            quality_s: r.get(16)?,
            attempts: r.get::<_, i64>(17)? as u32,
            error: r.get(18)?,
            created_ms: r.get(19)?,
            started_ms: r.get(20)?,
            finished_ms: r.get(21)?,
        }))
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn schema_version(&mut self) -> Result<i64, SearchError> {
        let v: Option<i64> = self
            .conn
            .query_row(sql::CURRENT_VERSION, [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(v.unwrap_or(0))
    }

    fn create_study(&mut self, s: &StudyRecord) -> Result<(), SearchError> {
        self.conn
            .execute(
                &sqlite_placeholders(sql::INSERT_STUDY),
                params![s.name, s.settings, s.seed as i64, s.created_ms],
            )
            .map_err(|e| self.err(format!("creating study `{}`: {e}", s.name)))?;
        Ok(())
    }

    fn study(&mut self, name: &str) -> Result<Option<StudyRecord>, SearchError> {
        self.conn
            .query_row(&sqlite_placeholders(sql::SELECT_STUDY), [name], |r| {
                Ok(StudyRecord {
                    name: r.get(0)?,
                    settings: r.get(1)?,
                    seed: r.get::<_, i64>(2)? as u64,
                    created_ms: r.get(3)?,
                })
            })
            .optional()
            .map_err(|e| self.err(e))
    }

    fn study_names(&mut self) -> Result<Vec<String>, SearchError> {
        let mut st = self
            .conn
            .prepare(sql::STUDY_NAMES)
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn trials(&mut self, study: &str) -> Result<Vec<TrialRecord>, SearchError> {
        let mut st = self
            .conn
            .prepare(&sqlite_placeholders(sql::SELECT_TRIALS))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([study], |r| self.row_to_trial(r))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            match row.map_err(|e| self.err(e))? {
                Ok(t) => out.push(t),
                Err(message) => {
                    let number = message
                        .split(':')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    return Err(SearchError::CorruptTrial {
                        location: self.location.clone(),
                        study: study.into(),
                        number,
                        message,
                    });
                }
            }
        }
        Ok(out)
    }

    fn insert_trial(&mut self, t: &TrialRecord) -> Result<(), SearchError> {
        let arch = serde_json::to_string(&t.arch).map_err(|e| self.err(e))?;
        let i = |v: Option<u64>| v.map(|x| x as i64);
        self.conn
            .execute(
                &sqlite_placeholders(sql::INSERT_TRIAL),
                params![
                    t.study,
                    t.number as i64,
                    t.hash,
                    arch,
                    t.origin,
                    t.status.as_str(),
                    i(t.duplicate_of),
                    t.latency_ms,
                    t.quality,
                    i(t.params),
                    i(t.macs),
                    t.violation,
                    t.objectives,
                    t.block_latency,
                    t.eval_seed as i64,
                    t.latency_s,
                    t.quality_s,
                    t.attempts as i64,
                    t.error,
                    t.created_ms,
                    t.started_ms,
                    t.finished_ms,
                ],
            )
            .map_err(|e| self.err(format!("inserting trial {}: {e}", t.number)))?;
        Ok(())
    }

    fn mark_running(
        &mut self,
        study: &str,
        number: u64,
        started_ms: i64,
    ) -> Result<(), SearchError> {
        self.conn
            .execute(
                &sqlite_placeholders(sql::MARK_RUNNING),
                params![started_ms, study, number as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn finish_trial(&mut self, t: &TrialRecord) -> Result<(), SearchError> {
        let i = |v: Option<u64>| v.map(|x| x as i64);
        self.conn
            .execute(
                &sqlite_placeholders(sql::FINISH_TRIAL),
                params![
                    t.status.as_str(),
                    t.latency_ms,
                    t.quality,
                    i(t.params),
                    i(t.macs),
                    t.violation,
                    t.objectives,
                    t.block_latency,
                    t.latency_s,
                    t.quality_s,
                    t.error,
                    t.started_ms,
                    t.finished_ms,
                    t.study,
                    t.number as i64,
                ],
            )
            .map_err(|e| self.err(format!("finishing trial {}: {e}", t.number)))?;
        Ok(())
    }

    fn requeue_running(&mut self, study: &str) -> Result<usize, SearchError> {
        self.conn
            .execute(&sqlite_placeholders(sql::REQUEUE_RUNNING), [study])
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(study: &str, number: u64) -> TrialRecord {
        let arch = unas_space::preset("tiny");
        TrialRecord {
            study: study.into(),
            number,
            hash: arch.hash_id(),
            arch,
            origin: "{\"kind\":\"random\"}".into(),
            status: TrialStatus::Pending,
            duplicate_of: None,
            latency_ms: None,
            quality: None,
            params: None,
            macs: None,
            violation: None,
            objectives: None,
            block_latency: None,
            eval_seed: u64::MAX - 3,
            latency_s: None,
            quality_s: None,
            attempts: 0,
            error: None,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
        }
    }

    #[test]
    fn placeholders_are_rewritten() {
        assert_eq!(
            sqlite_placeholders("a = $1 AND b = $12, '$x'"),
            "a = ?1 AND b = ?12, '$x'"
        );
    }

    #[test]
    fn migrations_are_idempotent_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let mut s = SqliteStore::open(&path).unwrap();
            assert_eq!(s.schema_version().unwrap(), 2);
            s.migrate(i64::MAX).unwrap();
            s.migrate(i64::MAX).unwrap();
            assert_eq!(s.schema_version().unwrap(), 2);
        }
        // Reopening applies nothing again; one row per version.
        let mut s = SqliteStore::open(&path).unwrap();
        let n: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(s.schema_version().unwrap(), 2);
    }

    #[test]
    fn upgrades_from_an_older_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let conn = Connection::open(&path).unwrap();
        let mut old = SqliteStore {
            conn,
            location: "old".into(),
        };
        old.migrate(1).unwrap();
        assert_eq!(old.schema_version().unwrap(), 1);
        drop(old);
        let mut s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), 2);
        let idx: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'trials_by_hash'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(idx, 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let e = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(
            e.contains("schema version 99") && e.contains("s.sqlite"),
            "{e}"
        );
    }

    #[test]
    fn trial_round_trip_and_requeue() {
        let mut s = SqliteStore::in_memory().unwrap();
        s.create_study(&StudyRecord {
            name: "a".into(),
            settings: "{}".into(),
            seed: u64::MAX,
            created_ms: 1,
        })
        .unwrap();
        assert_eq!(s.study("a").unwrap().unwrap().seed, u64::MAX);
        assert!(s
            .create_study(&StudyRecord {
                name: "a".into(),
                settings: "{}".into(),
                seed: 0,
                created_ms: 1,
            })
            .is_err());
        let t0 = trial("a", 0);
        s.insert_trial(&t0).unwrap();
        s.insert_trial(&trial("a", 1)).unwrap();
        assert!(s.insert_trial(&trial("a", 1)).is_err(), "duplicate number");
        s.mark_running("a", 0, 5).unwrap();
        s.mark_running("a", 1, 5).unwrap();
        let mut done = t0.clone();
        done.status = TrialStatus::Done;
        done.quality = Some(1.5);
        done.latency_ms = Some(2.5);
        done.params = Some(123);
        done.finished_ms = Some(9);
        done.started_ms = Some(5);
        s.finish_trial(&done).unwrap();
        assert_eq!(s.requeue_running("a").unwrap(), 1);
        let ts = s.trials("a").unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0].status, TrialStatus::Done);
        assert_eq!(ts[0].quality, Some(1.5));
        assert_eq!(ts[0].attempts, 1);
        assert_eq!(ts[0].eval_seed, u64::MAX - 3);
        assert_eq!(ts[0].arch, t0.arch);
        assert_eq!(ts[1].status, TrialStatus::Pending);
        assert_eq!(s.study_names().unwrap(), vec!["a".to_string()]);
    }
}
