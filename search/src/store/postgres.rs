//! [`PostgresStore`]: the trial store of a study spread over several machines. Same schema,
//! migrations and queries as SQLite (see [`super::sql`]); claims use `SELECT … FOR UPDATE SKIP
//! LOCKED`, so concurrent workers never wait on each other nor get the same trial.
//!
//! Connections are made without TLS (`NoTls`): use it on a trusted network (loopback, a
//! private cluster network or an SSH/WireGuard tunnel). A URL asking for `sslmode=require`
//! is refused with a message saying so.

use std::str::FromStr;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Row};
use unas_space::UNetArch;

use super::{
    redact_url, sql, stale_reason, Lease, Requeued, Store, StudyRecord, TrialRecord, TrialStatus,
};
use crate::error::SearchError;

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
        let location = redact_url(url);
        let password = password_of(url);
        let fail = |message: String| SearchError::Store {
            location: location.clone(),
            message: scrub(&message, password.as_deref()),
        };
        let mut config = Config::from_str(url)
            .map_err(|e| fail(format!("invalid PostgreSQL URL: {}", chain(&e))))?;
        if config.get_ssl_mode() == postgres::config::SslMode::Require {
            return Err(fail(
                "sslmode=require is not supported: unas connects without TLS (use a trusted \
                 network or a tunnel; see docs/distributed.md)"
                    .into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let user = config.get_user().unwrap_or("").to_string();
        let dbname = config
            .get_dbname()
            .map(str::to_string)
            .unwrap_or_else(|| user.clone());
        let client = config.connect(NoTls).map_err(|e| {
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
                None => format!(
                    "cannot connect: {} (is PostgreSQL running and listening at that host and port?)",
                    chain(&e)
                ),
            })
        })?;
        let mut store = Self {
            client,
            location,
            password,
        };
        store.migrate(i64::MAX)?;
        Ok(store)
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

    /// Applies migrations up to `target`, each in its own transaction under an advisory lock
    /// (safe from concurrent processes), skipping those recorded in `schema_version`.
    pub fn migrate(&mut self, target: i64) -> Result<(), SearchError> {
        let known = sql::MIGRATIONS.last().map_or(0, |m| m.0);
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
                tx.batch_execute(s).map_err(err)?;
            }
            tx.execute(sql::RECORD_VERSION, &[version, &super::now_ms()])
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
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

/// An error with its sources (`a: b: c`), without repeating a source already in the text.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

/// The password of a URL (userinfo or `password=` parameter), to scrub it from messages.
fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let from_userinfo = rest[..end]
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string());
    let from_query = rest.split_once('?').and_then(|(_, q)| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("password=").map(str::to_string))
    });
    from_userinfo.or(from_query).filter(|p| !p.is_empty())
}

/// `message` with every occurrence of the password (and its percent-decoded form) replaced.
fn scrub(message: &str, password: Option<&str>) -> String {
    let Some(p) = password else {
        return message.to_string();
    };
    let mut out = message.replace(p, "***");
    let decoded = percent_decode(p);
    if !decoded.is_empty() && decoded != p {
        out = out.replace(&decoded, "***");
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn row_to_trial(r: &Row) -> Result<TrialRecord, (u64, String)> {
    let g = |e: postgres::Error| (0u64, e.to_string());
    let number: i64 = r.try_get(1).map_err(g)?;
    let n = number as u64;
    let ge = |e: postgres::Error| (n, e.to_string());
    let arch_text: String = r.try_get(3).map_err(ge)?;
    let status_text: String = r.try_get(5).map_err(ge)?;
    let arch =
        serde_json::from_str::<UNetArch>(&arch_text).map_err(|e| (n, format!("arch: {e}")))?;
    let status = TrialStatus::parse(&status_text)
        .ok_or_else(|| (n, format!("unknown status `{status_text}`")))?;
    let u = |v: Option<i64>| v.map(|x| x as u64);
    Ok(TrialRecord {
        study: r.try_get(0).map_err(ge)?,
        number: n,
        hash: r.try_get(2).map_err(ge)?,
        arch,
        origin: r.try_get(4).map_err(ge)?,
        status,
        duplicate_of: u(r.try_get(6).map_err(ge)?),
        latency_ms: r.try_get(7).map_err(ge)?,
        quality: r.try_get(8).map_err(ge)?,
        params: u(r.try_get(9).map_err(ge)?),
        macs: u(r.try_get(10).map_err(ge)?),
        violation: r.try_get(11).map_err(ge)?,
        objectives: r.try_get(12).map_err(ge)?,
        block_latency: r.try_get(13).map_err(ge)?,
        eval_seed: r.try_get::<_, i64>(14).map_err(ge)? as u64,
        latency_s: r.try_get(15).map_err(ge)?,
        quality_s: r.try_get(16).map_err(ge)?,
        attempts: r.try_get::<_, i32>(17).map_err(ge)? as u32,
        error: r.try_get(18).map_err(ge)?,
        created_ms: r.try_get(19).map_err(ge)?,
        started_ms: r.try_get(20).map_err(ge)?,
        finished_ms: r.try_get(21).map_err(ge)?,
    })
}

/// Parameters of [`sql::INSERT_TRIAL`] (the arch as JSON).
struct TrialParams {
    status: &'static str,
    number: i64,
    arch: String,
    duplicate_of: Option<i64>,
    params: Option<i64>,
    macs: Option<i64>,
    eval_seed: i64,
    attempts: i32,
}

impl TrialParams {
    fn of(t: &TrialRecord) -> Result<Self, serde_json::Error> {
        let i = |v: Option<u64>| v.map(|x| x as i64);
        Ok(Self {
            status: t.status.as_str(),
            number: t.number as i64,
            arch: serde_json::to_string(&t.arch)?,
            duplicate_of: i(t.duplicate_of),
            params: i(t.params),
            macs: i(t.macs),
            eval_seed: t.eval_seed as i64,
            attempts: t.attempts.min(i32::MAX as u32) as i32,
        })
    }

    fn insert<'a>(&'a self, t: &'a TrialRecord) -> [&'a (dyn ToSql + Sync); 22] {
        [
            &t.study,
            &self.number,
            &t.hash,
            &self.arch,
            &t.origin,
            &self.status,
            &self.duplicate_of,
            &t.latency_ms,
            &t.quality,
            &self.params,
            &self.macs,
            &t.violation,
            &t.objectives,
            &t.block_latency,
            &self.eval_seed,
            &t.latency_s,
            &t.quality_s,
            &self.attempts,
            &t.error,
            &t.created_ms,
            &t.started_ms,
            &t.finished_ms,
        ]
    }

    fn finish<'a>(&'a self, t: &'a TrialRecord) -> [&'a (dyn ToSql + Sync); 15] {
        [
            &self.status,
            &t.latency_ms,
            &t.quality,
            &self.params,
            &self.macs,
            &t.violation,
            &t.objectives,
            &t.block_latency,
            &t.latency_s,
            &t.quality_s,
            &t.error,
            &t.started_ms,
            &t.finished_ms,
            &t.study,
            &self.number,
        ]
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
        let location = self.location.clone();
        let password = self.password.clone();
        let err = |e: postgres::Error| SearchError::Store {
            location: location.clone(),
            message: scrub(&format!("claiming a trial: {e}"), password.as_deref()),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        let Some(row) = tx.query_opt(claim.as_str(), &[&study]).map_err(err)? else {
            return Ok(None);
        };
        let number: i64 = row.get(0);
        tx.execute(sql::CLAIM_UPDATE, &[&now_ms, &worker, &study, &number])
            .map_err(err)?;
        let rows = tx
            .query(sql::SELECT_TRIAL, &[&study, &number])
            .map_err(err)?;
        tx.commit().map_err(err)?;
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
        let mut params: Vec<&(dyn ToSql + Sync)> = p.finish(t).to_vec();
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
        let (prefix, suffix) = stale_reason(max_attempts, now_ms - stale_before_ms);
        let max = max_attempts.min(i32::MAX as u32) as i32;
        let location = self.location.clone();
        let password = self.password.clone();
        let err = |e: postgres::Error| SearchError::Store {
            location: location.clone(),
            message: scrub(
                &format!("requeueing stale trials: {e}"),
                password.as_deref(),
            ),
        };
        let mut tx = self.client.transaction().map_err(err)?;
        let failed = tx
            .execute(
                sql::FAIL_STALE,
                &[&prefix, &suffix, &now_ms, &study, &stale_before_ms, &max],
            )
            .map_err(err)?;
        let pending = tx
            .execute(sql::REQUEUE_STALE, &[&study, &stale_before_ms])
            .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Requeued {
            pending: pending as usize,
            failed: failed as usize,
        })
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
        let location = self.location.clone();
        let password = self.password.clone();
        let name = study.name.clone();
        let err = |e: &dyn std::fmt::Display| SearchError::Store {
            location: location.clone(),
            message: scrub(
                &format!("importing study `{name}`: {e}"),
                password.as_deref(),
            ),
        };
        let mut tx = self.client.transaction().map_err(|e| err(&e))?;
        tx.execute(
            sql::INSERT_STUDY,
            &[
                &study.name,
                &study.settings,
                &(study.seed as i64),
                &study.created_ms,
            ],
        )
        .map_err(|e| err(&e))?;
        let insert = tx.prepare(sql::INSERT_TRIAL).map_err(|e| err(&e))?;
        for t in trials {
            let p = TrialParams::of(t).map_err(|e| err(&e))?;
            tx.execute(&insert, &p.insert(t)).map_err(|e| err(&e))?;
        }
        for l in leases {
            tx.execute(
                sql::SET_LEASE,
                &[&l.worker, &l.heartbeat_ms, &study.name, &(l.number as i64)],
            )
            .map_err(|e| err(&e))?;
        }
        tx.commit().map_err(|e| err(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_found_and_scrubbed() {
        assert_eq!(
            password_of("postgres://u:s3cr%21t@h:5432/db").as_deref(),
            Some("s3cr%21t")
        );
        assert_eq!(
            password_of("postgres://u@h/db?password=pw&x=1").as_deref(),
            Some("pw")
        );
        assert_eq!(password_of("postgres://u@h/db"), None);
        assert_eq!(
            scrub("bad s3cr%21t and s3cr!t", Some("s3cr%21t")),
            "bad *** and ***"
        );
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[test]
    fn malformed_urls_are_one_clear_error_without_the_password() {
        for url in [
            "postgres://u:hunter2@localhost:notaport/db",
            "postgres://u:hunter2@localhost:5432/db?sslmode=require",
            "postgres://u:hunter2@localhost:5432/db?bogus_option=1",
        ] {
            let e = PostgresStore::connect(url).err().unwrap().to_string();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains("postgres://u@localhost"), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
    }
}
