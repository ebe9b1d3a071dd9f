//! [`PostgresStore`]: the trial store of a study spread over several machines. Same schema,
//! migrations and queries as SQLite (see [`super::sql`]); claims use `SELECT … FOR UPDATE SKIP
//! LOCKED`, so concurrent workers never wait on each other nor get the same trial.
//!
//! TLS follows libpq's `sslmode` and `sslrootcert` URL parameters ([`tls`]): `verify-full`
//! with the cluster's CA file is the setting for a database reached over a network.

use std::str::FromStr;
use std::time::Duration;

use postgres::config::{Host, SslMode};
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls, Row};

use super::{redact_url, sql, stale_reason, Lease, Requeued, Store, StudyRecord, TrialRecord};
use crate::error::SearchError;
use rows::{row_to_trial, Param, TrialParams};
use secrets::{chain, password_of, scrub};

mod rows;
mod rungs;
mod secrets;
#[cfg(test)]
mod tests;
mod tls;

/// Advisory lock taken while migrating, so that workers starting together migrate once.
const MIGRATION_LOCK: i64 = 0x0075_6e61_736d_6967; // "unasmig"

/// The PostgreSQL store (one connection).
pub struct PostgresStore {
    client: Client,
    location: String,
    password: Option<String>,
}

impl PostgresStore {
    /// Connects to `postgres://user:password@host:port/database` (or `postgresql://`; the
    /// usual libpq URL parameters are accepted, e.g. `?connect_timeout=5`) and applies pending
    /// migrations. A malformed URL, an unreachable server, a wrong password or a missing
    /// database each give one error naming the URL without its password.
    pub fn connect(url: &str) -> Result<Self, SearchError> {
        let mut store = Self::connect_only(url)?;
        store.migrate(i64::MAX)?;
        Ok(store)
    }

    /// Connects like [`PostgresStore::connect`] for reading only (`unas dashboard`): no
    /// migration, and the session's transactions are read-only, so the server refuses any
    /// write; a database at an older schema version is refused.
    pub fn connect_read_only(url: &str) -> Result<Self, SearchError> {
        let mut store = Self::connect_only(url)?;
        store
            .client
            .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .map_err(|e| store.err("setting the session read-only", e))?;
        let found = store.schema_version()?;
        sql::require_current(Some(found).filter(|&v| v > 0), &store.location)?;
        Ok(store)
    }

    fn connect_only(url: &str) -> Result<Self, SearchError> {
        let location = redact_url(url);
        let password = password_of(url);
        let fail = |message: String| SearchError::Store {
            location: location.clone(),
            message: scrub(&message, password.as_deref()),
        };
        let (rest, tls) = tls::split_tls_params(url).map_err(&fail)?;
        let mut config = Config::from_str(&rest)
            .map_err(|e| fail(format!("invalid PostgreSQL URL: {}", chain(&e))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let user = config.get_user().unwrap_or("").to_string();
        let dbname = config
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            _ => "localhost".into(),
        };
        let connected = match tls::client_config(&tls).map_err(&fail)? {
            None => config
                .ssl_mode(SslMode::Disable)
                .connect(NoTls)
                .map_err(|e| (e, None)),
            Some((client_config, ca)) => {
                let mode = match tls.mode {
                    tls::SslMode::Prefer => SslMode::Prefer,
                    _ => SslMode::Require,
                };
                let connector = tokio_postgres_rustls::MakeRustlsConnect::new(client_config);
                config
                    .ssl_mode(mode)
                    .connect(connector)
                    .map_err(|e| (e, ca))
            }
        };
        let client = connected.map_err(|(e, ca)| {
            fail(match e.code() {
                Some(c) if *c == SqlState::INVALID_PASSWORD => {
                    format!("password authentication failed for user `{user}` (wrong password?)")
                }
                Some(c) if *c == SqlState::INVALID_CATALOG_NAME => format!(
                    "database `{dbname}` does not exist (create it, e.g. `createdb -O {user} {dbname}`)"
                ),
                Some(_) => format!(
                    "connection refused by the server: {}",
                    e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())
                ),
                None => tls::explain(&e, &host, ca.as_deref()).unwrap_or_else(|| {
                    format!(
                        "cannot connect: {} (is PostgreSQL running and listening at that host \
                         and port?)",
                        chain(&e)
                    )
                }),
            })
        })?;
        Ok(Self {
            client,
            location,
            password,
        })
    }

    /// Whether this connection is encrypted, as the server sees it (`pg_stat_ssl`).
    pub fn uses_tls(&mut self) -> Result<bool, SearchError> {
        let row = self
            .client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .map_err(|e| self.err("pg_stat_ssl", e))?;
        Ok(row.get(0))
    }

    fn err(&self, context: &str, e: impl std::fmt::Display) -> SearchError {
        let message = if context.is_empty() {
            e.to_string()
        } else {
            format!("{context}: {e}")
        };
        SearchError::Store {
            location: self.location.clone(),
            message: scrub(&message, self.password.as_deref()),
        }
    }

    /// Runs `f` in a transaction, committed when `f` succeeds; errors name `what` (without
    /// the password).
    pub(super) fn in_transaction<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, SearchError> {
        let client = &mut self.client;
        let run = || {
            let mut tx = client.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e: postgres::Error| self.err(what, e))
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
        let max = max_attempts.min(i32::MAX as u32) as i32;
        self.in_transaction("requeueing lost workers' work", |tx| {
            let args: [Param<'_>; 6] = [&prefix, &suffix, &now_ms, &study, &stale_before_ms, &max];
            let failed = tx.execute(fail, &args)?;
            let pending = tx.execute(requeue, &[&study, &stale_before_ms])?;
            Ok(Requeued {
                pending: pending as usize,
                failed: failed as usize,
            })
        })
    }

    /// Applies migrations up to `target`, each in its own transaction under an advisory lock
    /// (safe from concurrent processes), skipping those recorded in `schema_version`.
    pub fn migrate(&mut self, target: i64) -> Result<(), SearchError> {
        for (version, statements) in sql::MIGRATIONS {
            if *version > target {
                break;
            }
            let location = self.location.clone();
            let password = self.password.clone();
            let err = |e: postgres::Error| SearchError::Store {
                location: location.clone(),
                message: scrub(&format!("migration: {e}"), password.as_deref()),
            };
            let mut tx = self.client.transaction().map_err(err)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(err)?;
            tx.batch_execute(sql::VERSION_TABLE).map_err(err)?;
            let current: Option<i64> = tx.query_one(sql::CURRENT_VERSION, &[]).map_err(err)?.get(0);
            if sql::check_version(current, &self.location)? >= *version {
                continue;
            }
            for s in *statements {
                tx.batch_execute(s).map_err(err)?;
            }
            tx.execute(sql::RECORD_VERSION, &[version, &super::now_ms()])
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        sql::check_version(Some(self.schema_version()?), &self.location)?;
        Ok(())
    }

    fn rows_to_trials(&self, study: &str, rows: &[Row]) -> Result<Vec<TrialRecord>, SearchError> {
        rows.iter()
            .map(|r| {
                row_to_trial(r).map_err(|(number, message)| SearchError::CorruptTrial {
                    location: self.location.clone(),
                    study: study.into(),
                    number,
                    message,
                })
            })
            .collect()
    }
}

impl Store for PostgresStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn schema_version(&mut self) -> Result<i64, SearchError> {
        let v: Option<i64> = self
            .client
            .query_one(sql::CURRENT_VERSION, &[])
            .map_err(|e| self.err("", e))?
            .get(0);
        Ok(v.unwrap_or(0))
    }

    fn create_study(&mut self, s: &StudyRecord) -> Result<(), SearchError> {
        self.client
            .execute(
                sql::INSERT_STUDY,
                &[&s.name, &s.settings, &(s.seed as i64), &s.created_ms],
            )
            .map_err(|e| self.err(&format!("creating study `{}`", s.name), e))?;
        Ok(())
    }

    fn study(&mut self, name: &str) -> Result<Option<StudyRecord>, SearchError> {
        let row = self
            .client
            .query_opt(sql::SELECT_STUDY, &[&name])
            .map_err(|e| self.err("", e))?;
        Ok(row.map(|r| StudyRecord {
            name: r.get(0),
            settings: r.get(1),
            seed: r.get::<_, i64>(2) as u64,
            created_ms: r.get(3),
        }))
    }

    fn study_names(&mut self) -> Result<Vec<String>, SearchError> {
        let rows = self
            .client
            .query(sql::STUDY_NAMES, &[])
            .map_err(|e| self.err("", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn trials(&mut self, study: &str) -> Result<Vec<TrialRecord>, SearchError> {
        let rows = self
            .client
            .query(sql::SELECT_TRIALS, &[&study])
            .map_err(|e| self.err("", e))?;
        self.rows_to_trials(study, &rows)
    }

    fn insert_trial(&mut self, t: &TrialRecord) -> Result<(), SearchError> {
        let p = TrialParams::of(t).map_err(|e| self.err("", e))?;
        self.client
            .execute(sql::INSERT_TRIAL, &p.insert(t))
            .map_err(|e| self.err(&format!("inserting trial {}", t.number), e))?;
        Ok(())
    }

    fn mark_running(
        &mut self,
        study: &str,
        number: u64,
        started_ms: i64,
    ) -> Result<(), SearchError> {
        self.client
            .execute(sql::MARK_RUNNING, &[&started_ms, &study, &(number as i64)])
            .map_err(|e| self.err("", e))?;
        Ok(())
    }

    fn finish_trial(&mut self, t: &TrialRecord) -> Result<(), SearchError> {
        let p = TrialParams::of(t).map_err(|e| self.err("", e))?;
        self.client
            .execute(sql::FINISH_TRIAL, &p.finish(t))
            .map_err(|e| self.err(&format!("finishing trial {}", t.number), e))?;
        Ok(())
    }

    fn requeue_running(&mut self, study: &str) -> Result<usize, SearchError> {
        let n = self
            .client
            .execute(sql::REQUEUE_RUNNING, &[&study])
            .map_err(|e| self.err("", e))?;
        Ok(n as usize)
    }

    fn clock_ms(&mut self) -> Result<i64, SearchError> {
        let row = self
            .client
            .query_one(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                &[],
            )
            .map_err(|e| self.err("reading the server clock", e))?;
        Ok(row.get(0))
    }

    fn claim_trial(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<TrialRecord>, SearchError> {
        let claim = format!("{} FOR UPDATE SKIP LOCKED", sql::CLAIM_SELECT);
        let rows = self.in_transaction("claiming a trial", |tx| {
            let Some(row) = tx.query_opt(claim.as_str(), &[&study])? else {
                return Ok(Vec::new());
            };
            let number: i64 = row.get(0);
            tx.execute(sql::CLAIM_UPDATE, &[&now_ms, &worker, &study, &number])?;
            tx.query(sql::SELECT_TRIAL, &[&study, &number])
        })?;
        Ok(self.rows_to_trials(study, &rows)?.pop())
    }

    fn heartbeat(
        &mut self,
        study: &str,
        number: u64,
        worker: &str,
        now_ms: i64,
    ) -> Result<bool, SearchError> {
        let n = self
            .client
            .execute(
                sql::HEARTBEAT,
                &[&now_ms, &study, &(number as i64), &worker],
            )
            .map_err(|e| self.err("heartbeat", e))?;
        Ok(n == 1)
    }

    fn finish_claimed(&mut self, t: &TrialRecord, worker: &str) -> Result<bool, SearchError> {
        let p = TrialParams::of(t).map_err(|e| self.err("", e))?;
        let mut params = p.finish(t);
        let worker = worker.to_string();
        params.push(&worker);
        let n = self
            .client
            .execute(sql::FINISH_CLAIMED, &params)
            .map_err(|e| self.err(&format!("finishing trial {}", t.number), e))?;
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
        let rows = self
            .client
            .query(sql::SELECT_LEASES, &[&study])
            .map_err(|e| self.err("", e))?;
        Ok(rows
            .iter()
            .map(|r| Lease {
                number: r.get::<_, i64>(0) as u64,
                worker: r.get(1),
                heartbeat_ms: r.get(2),
            })
            .collect())
    }

    fn import_study(
        &mut self,
        study: &StudyRecord,
        trials: &[TrialRecord],
        leases: &[Lease],
    ) -> Result<(), SearchError> {
        // The rows' parameters first: a trial that cannot be written stops the copy before it
        // starts.
        let params = trials
            .iter()
            .map(TrialParams::of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(&format!("importing study `{}`", study.name), e))?;
        self.in_transaction(&format!("importing study `{}`", study.name), |tx| {
            let seed = study.seed as i64;
            let args: [Param<'_>; 4] = [&study.name, &study.settings, &seed, &study.created_ms];
            tx.execute(sql::INSERT_STUDY, &args)?;
            let insert = tx.prepare(sql::INSERT_TRIAL)?;
            for (t, p) in trials.iter().zip(&params) {
                tx.execute(&insert, &p.insert(t))?;
            }
            for l in leases {
                let number = l.number as i64;
                let args: [Param<'_>; 4] = [&l.worker, &l.heartbeat_ms, &study.name, &number];
                tx.execute(sql::SET_LEASE, &args)?;
            }
            Ok(())
        })
    }
}
