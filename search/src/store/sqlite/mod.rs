//! [`SqliteStore`]: the default trial store, one database file in the run directory. Claims
//! run in `BEGIN IMMEDIATE` transactions (SQLite has no `SKIP LOCKED`; the write lock
//! serialises claimers), so workers on one machine can share a file.

use std::path::{Path, PathBuf};

use rusqlite::{params, params_from_iter, Connection, TransactionBehavior};

use super::dialect::{DbError, Dialect, Statements};
use super::param::Param;
use super::{now_ms, sql, sqlite_placeholders, Store};
use crate::error::SearchError;

mod rows;
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

impl Statements<SqliteStore> for &Connection {
    fn run(&mut self, query: &str, args: &[&dyn Param]) -> Result<u64, DbError> {
        let n = self.execute(&sqlite_placeholders(query), params_from_iter(args))?;
        Ok(n as u64)
    }

    fn run_each(&mut self, query: &str, each: &[Vec<&dyn Param>]) -> Result<(), DbError> {
        let mut statement = self.prepare(&sqlite_placeholders(query))?;
        for args in each {
            statement.execute(params_from_iter(args))?;
        }
        Ok(())
    }

    fn rows<T>(
        &mut self,
        query: &str,
        args: &[&dyn Param],
        mut read: impl FnMut(&rusqlite::Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut statement = self.prepare(&sqlite_placeholders(query))?;
        let mut rows = statement.query(params_from_iter(args))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read(row)?);
        }
        Ok(out)
    }
}

impl Dialect for SqliteStore {
    type Row<'r> = rusqlite::Row<'r>;
    type Conn<'c> = &'c Connection;
    type Tx<'t> = &'t Connection;
    const CLAIM_LOCK: &'static str = "";

    fn location(&self) -> &str {
        &self.location
    }

    fn clock(&mut self) -> Result<i64, SearchError> {
        Ok(now_ms())
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> SearchError {
        if what.is_empty() {
            self.err(e)
        } else {
            self.err(format!("{what}: {e}"))
        }
    }

    fn with_conn<T>(&mut self, f: impl FnOnce(&mut &Connection) -> T) -> T {
        f(&mut &self.conn)
    }

    fn transaction<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut &Connection) -> Result<T, DbError>,
    ) -> Result<T, SearchError> {
        let run = || {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&mut &*tx)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e: DbError| self.error(what, e))
    }
}
