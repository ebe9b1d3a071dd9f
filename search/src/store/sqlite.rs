//! [`SqliteStore`]: the default trial store, one database file in the run directory. Claims
//! run in `BEGIN IMMEDIATE` transactions (SQLite has no `SKIP LOCKED`; the write lock
//! serialises claimers), so workers on one machine can share a file.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use unas_space::UNetArch;

use super::{
    now_ms, sql, sqlite_placeholders, stale_reason, Lease, Requeued, Store, StudyRecord,
    TrialRecord, TrialStatus,
};
use crate::error::SearchError;

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
}

fn row_to_trial(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TrialRecord, String>> {
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

    fn clock_ms(&mut self) -> Result<i64, SearchError> {
        Ok(now_ms())
    }

    fn claim_trial(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<TrialRecord>, SearchError> {
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Store {
            location: location.clone(),
            message: format!("claiming a trial: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let number: Option<i64> = tx
            .query_row(&sqlite_placeholders(sql::CLAIM_SELECT), [study], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err)?;
        let Some(number) = number else {
            return Ok(None);
        };
        tx.execute(
            &sqlite_placeholders(sql::CLAIM_UPDATE),
            params![now_ms, worker, study, number],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        self.trial(study, number as u64)
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
        let i = |v: Option<u64>| v.map(|x| x as i64);
        let n = self
            .conn
            .execute(
                &sqlite_placeholders(sql::FINISH_CLAIMED),
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
                    worker,
                ],
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
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Store {
            location: location.clone(),
            message: format!("requeueing stale trials: {e}"),
        };
        let (prefix, suffix) = stale_reason(max_attempts, now_ms - stale_before_ms);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let failed = tx
            .execute(
                &sqlite_placeholders(sql::FAIL_STALE),
                params![
                    prefix,
                    suffix,
                    now_ms,
                    study,
                    stale_before_ms,
                    max_attempts as i64
                ],
            )
            .map_err(err)?;
        let pending = tx
            .execute(
                &sqlite_placeholders(sql::REQUEUE_STALE),
                params![study, stale_before_ms],
            )
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Requeued { pending, failed })
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
        let location = self.location.clone();
        let err = |e: rusqlite::Error| SearchError::Store {
            location: location.clone(),
            message: format!("importing study `{}`: {e}", study.name),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        tx.execute(
            &sqlite_placeholders(sql::INSERT_STUDY),
            params![
                study.name,
                study.settings,
                study.seed as i64,
                study.created_ms
            ],
        )
        .map_err(err)?;
        for t in trials {
            insert_trial(&tx, t).map_err(err)?;
        }
        for l in leases {
            tx.execute(
                &sqlite_placeholders(sql::SET_LEASE),
                params![l.worker, l.heartbeat_ms, study.name, l.number as i64],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

impl SqliteStore {
    fn trial(&mut self, study: &str, number: u64) -> Result<Option<TrialRecord>, SearchError> {
        let row = self
            .conn
            .query_row(
                &sqlite_placeholders(sql::SELECT_TRIAL),
                params![study, number as i64],
                row_to_trial,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match row {
            None => Ok(None),
            Some(Ok(t)) => Ok(Some(t)),
            Some(Err(message)) => Err(SearchError::CorruptTrial {
                location: self.location.clone(),
                study: study.into(),
                number,
                message,
            }),
        }
    }
}

fn insert_trial(conn: &Connection, t: &TrialRecord) -> rusqlite::Result<usize> {
    let arch = serde_json::to_string(&t.arch)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let i = |v: Option<u64>| v.map(|x| x as i64);
    conn.execute(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(study: &str, number: u64) -> TrialRecord {
        let origin = "{\"kind\":\"random\"}".to_string();
        TrialRecord::pending(
            study,
            number,
            unas_space::preset("tiny"),
            origin,
            u64::MAX - 3,
            None,
        )
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
            assert_eq!(s.schema_version().unwrap(), 3);
            s.migrate(i64::MAX).unwrap();
            s.migrate(i64::MAX).unwrap();
            assert_eq!(s.schema_version().unwrap(), 3);
        }
        // Reopening applies nothing again; one row per version.
        let mut s = SqliteStore::open(&path).unwrap();
        let n: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(s.schema_version().unwrap(), 3);
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
        assert_eq!(s.schema_version().unwrap(), 3);
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
