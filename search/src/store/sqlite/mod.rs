//! [`SqliteStore`]: the default trial store, one database file in the run directory. Claims
//! run in `BEGIN IMMEDIATE` transactions (SQLite has no `SKIP LOCKED`; the write lock
//! serialises claimers), so workers on one machine can share a file.

use std::path::{Path, PathBuf};

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::{
    now_ms, sql, sqlite_placeholders, stale_reason, Lease, Requeued, Store, StudyRecord,
    TrialRecord,
};
use crate::error::SearchError;
use rows::{insert_trial, row_to_trial, TrialValues};

mod rows;
mod rungs;
#[cfg(test)]
mod tests;

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

    /// Opens an existing database file read-only (`unas dashboard`): nothing is created,
    /// migrated or written; a file at an older schema version is refused.
    pub fn open_read_only(path: &Path) -> Result<Self, SearchError> {
        let location = path.display().to_string();
        let err = |message: String| SearchError::Store {
            location: location.clone(),
            message,
        };
        if !path.is_file() {
            return Err(err("no such store file".into()));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(|e| err(e.to_string()))?;
        let found: Option<i64> = conn
            .query_row(sql::CURRENT_VERSION, [], |r| r.get(0))
            .map_err(|e| err(format!("not a unas trial store: {e}")))?;
        sql::require_current(found, &location)?;
        Ok(Self { conn, location })
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

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction (the write lock taken at once, so
    /// concurrent writers queue instead of failing), committed when `f` succeeds; errors name
    /// `what`.
    pub(super) fn immediate<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, SearchError> {
        let run = || {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e: rusqlite::Error| self.err(format!("{what}: {e}")))
    }

    /// Lost workers' rows of a study (trials or rungs: `[fail, requeue]` statements): failed at
    /// the retry limit, else back to pending, in one transaction.
    pub(super) fn requeue_stale_in(
        &mut self,
        study: &str,
        (stale_before_ms, max_attempts, now_ms): (i64, u32, i64),
        [fail, requeue]: [&str; 2],
    ) -> Result<Requeued, SearchError> {
        let (prefix, suffix) = stale_reason(max_attempts, now_ms - stale_before_ms);
        let limit = max_attempts as i64;
        self.immediate("requeueing lost workers' work", |tx| {
            let args = params![prefix, suffix, now_ms, study, stale_before_ms, limit];
            let failed = tx.execute(&sqlite_placeholders(fail), args)?;
            let args = params![study, stale_before_ms];
            let pending = tx.execute(&sqlite_placeholders(requeue), args)?;
            Ok(Requeued { pending, failed })
        })
    }

    /// Applies migrations up to `target` (each in its own transaction, skipping those already
    /// recorded in `schema_version`); safe to call any number of times and from concurrent
    /// processes. Returns the version reached.
    pub fn migrate(&mut self, target: i64) -> Result<(), SearchError> {
        self.conn
            .execute(sql::VERSION_TABLE, [])
            .map_err(|e| self.err(e))?;
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
            if sql::check_version(current, &self.location)? >= *version {
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
        sql::check_version(Some(self.schema_version()?), &self.location)?;
        Ok(())
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
            .query_map([study], row_to_trial)
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
        insert_trial(&self.conn, t)
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
        let v = TrialValues::of(t).map_err(|e| self.err(e))?;
        self.conn
            .execute(
                &sqlite_placeholders(sql::FINISH_TRIAL),
                params_from_iter(v.finish(t)),
            )
            .map_err(|e| self.err(format!("finishing trial {}: {e}", t.number)))?;
        Ok(())
    }

    fn requeue_running(&mut self, study: &str) -> Result<usize, SearchError> {
        self.conn
            .execute(&sqlite_placeholders(sql::REQUEUE_RUNNING), [study])
            .map_err(|e| self.err(e))
    }

    fn clock_ms(&mut self) -> Result<i64, SearchError> {
        Ok(now_ms())
    }

    fn claim_trial(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<TrialRecord>, SearchError> {
        let claimed = self.immediate("claiming a trial", |tx| {
            let select = sqlite_placeholders(sql::CLAIM_SELECT);
            let number: Option<i64> = tx.query_row(&select, [study], |r| r.get(0)).optional()?;
            if let Some(n) = number {
                let update = sqlite_placeholders(sql::CLAIM_UPDATE);
                tx.execute(&update, params![now_ms, worker, study, n])?;
            }
            Ok(number)
        })?;
        match claimed {
            Some(n) => self.trial(study, n as u64),
            None => Ok(None),
        }
    }

    fn heartbeat(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        now_ms: i64,
    ) -> Result<bool, SearchError> {
        let n = self
            .conn
            .execute(
                &sqlite_placeholders(sql::HEARTBEAT),
                params![now_ms, study, number as i64, worker],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn finish_claimed(&mut self, t: &TrialRecord, worker: &str) -> Result<bool, SearchError> {
        let v = TrialValues::of(t).map_err(|e| self.err(e))?;
        let mut params = v.finish(t);
        params.push(&worker);
        let n = self
            .conn
            .execute(
                &sqlite_placeholders(sql::FINISH_CLAIMED),
                params_from_iter(params),
            )
            .map_err(|e| self.err(format!("finishing trial {}: {e}", t.number)))?;
        Ok(n == 1)
    }

    fn requeue_stale(
        &mut self,
        study: &str,
        stale_before_ms: i64,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<Requeued, SearchError> {
        let stale = (stale_before_ms, max_attempts, now_ms);
        self.requeue_stale_in(study, stale, [sql::FAIL_STALE, sql::REQUEUE_STALE])
    }

    fn leases(&mut self, study: &str) -> Result<Vec<Lease>, SearchError> {
        let mut st = self
            .conn
            .prepare(&sqlite_placeholders(sql::SELECT_LEASES))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([study], |r| {
                Ok(Lease {
                    number: r.get::<_, i64>(0)? as u64,
                    worker: r.get(1)?,
                    heartbeat_ms: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn import_study(
        &mut self,
        study: &StudyRecord,
        trials: &[TrialRecord],
        leases: &[Lease],
    ) -> Result<(), SearchError> {
        let what = format!("importing study `{}`", study.name);
        self.immediate(&what, |tx| {
            let insert = sqlite_placeholders(sql::INSERT_STUDY);
            let seed = study.seed as i64;
            tx.execute(
                &insert,
                params![study.name, study.settings, seed, study.created_ms],
            )?;
            for t in trials {
                insert_trial(tx, t)?;
            }
            let set = sqlite_placeholders(sql::SET_LEASE);
            for l in leases {
                let number = l.number as i64;
                tx.execute(&set, params![l.worker, l.heartbeat_ms, study.name, number])?;
            }
            Ok(())
        })
    }
}
