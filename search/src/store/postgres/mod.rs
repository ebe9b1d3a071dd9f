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
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Transaction};

use super::dialect::{DbError, Dialect, Statements};
use super::param::Param;
use super::{redact_url, sql, Store};
use crate::error::SearchError;
use secrets::{chain, password_of, scrub};

mod rows;
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
}

/// The parameters as the PostgreSQL client takes them.
fn pg_args<'a>(args: &[&'a dyn Param]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|&a| a as &(dyn ToSql + Sync)).collect()
}

impl<C: GenericClient> Statements<PostgresStore> for C {
    fn run(&mut self, query: &str, args: &[&dyn Param]) -> Result<u64, DbError> {
        Ok(self.execute(query, &pg_args(args))?)
    }

    fn run_each(&mut self, query: &str, each: &[Vec<&dyn Param>]) -> Result<(), DbError> {
        let statement = self.prepare(query)?;
        for args in each {
            self.execute(&statement, &pg_args(args))?;
        }
        Ok(())
    }

    fn rows<T>(
        &mut self,
        query: &str,
        args: &[&dyn Param],
        read: impl FnMut(&postgres::Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        self.query(query, &pg_args(args))?
            .iter()
            .map(read)
            .collect()
    }
}

impl Dialect for PostgresStore {
    type Row<'r> = postgres::Row;
    type Conn<'c> = Client;
    type Tx<'t> = Transaction<'t>;
    const CLAIM_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";

    fn location(&self) -> &str {
        &self.location
    }

    fn clock(&mut self) -> Result<i64, SearchError> {
        let row = self
            .client
            .query_one(
                "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
                &[],
            )
            .map_err(|e| self.err("reading the server clock", e))?;
        Ok(row.get(0))
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> SearchError {
        self.err(what, e)
    }

    fn with_conn<T>(&mut self, f: impl FnOnce(&mut Client) -> T) -> T {
        f(&mut self.client)
    }

    fn transaction<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, DbError>,
    ) -> Result<T, SearchError> {
        let client = &mut self.client;
        let run = || {
            let mut tx = client.transaction()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e: DbError| self.err(what, e))
    }
}
