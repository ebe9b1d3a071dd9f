//! One implementation of [`Store`](super::Store) and [`RungStore`](super::RungStore) for both
//! databases: the trial and rung methods are written once, over a [`Dialect`] that says how a
//! database runs a statement, reads a row and opens a transaction.
//!
//! - [`Statements`]: running the portable statements of [`super::sql`] (PostgreSQL's `$1`
//!   placeholders; SQLite's implementation rewrites them) on a connection or in a transaction.
//! - [`Row`]: reading records from either database's rows (the trial's own mapping stays with
//!   each database, see `postgres/rows.rs` and `sqlite/rows.rs`).
//! - `trials.rs` and `rungs.rs`: the generic `Store` and `RungStore` implementations.

use std::fmt::Display;

use super::lease::{stale_reason, Leases, Stale};
use super::param::{sql_int, Param};
use super::{Requeued, TrialRecord};
use crate::error::SearchError;

mod params;
mod row;
mod rungs;
mod trials;

pub use params::TrialParams;
pub use row::{Row, Value};

/// A database error, or what is wrong with a row, as its message.
#[derive(Debug)]
pub struct DbError(String);

impl Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for DbError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e.to_string())
    }
}

/// The statements of [`super::sql`] run on one connection or in one transaction of dialect
/// `D`.
pub trait Statements<D: Dialect> {
    /// Runs a statement; the rows it changed.
    fn run(&mut self, query: &str, args: &[&dyn Param]) -> Result<u64, DbError>;
    /// Runs one statement, prepared once, with each list of parameters.
    fn run_each(&mut self, query: &str, each: &[Vec<&dyn Param>]) -> Result<(), DbError>;
    /// The rows of a query, each read by `read`.
    fn rows<T>(
        &mut self,
        query: &str,
        args: &[&dyn Param],
        read: impl FnMut(&D::Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError>;
}

/// What differs between the two databases; the store methods are written once over it.
pub trait Dialect: Send + Sized {
    /// A row as the database reads it.
    type Row<'r>: Row;
    /// The connection, for statements outside a transaction.
    type Conn<'c>: Statements<Self>;
    /// An open transaction.
    type Tx<'t>: Statements<Self>;
    /// Appended to a claim's `SELECT` to lock the row it finds against other claimers
    /// (PostgreSQL's `FOR UPDATE SKIP LOCKED`; SQLite's claiming transaction holds the write
    /// lock instead).
    const CLAIM_LOCK: &'static str;

    /// The database file or URL (without credentials).
    fn location(&self) -> &str;
    /// The store's clock in Unix ms (see [`super::Store::clock_ms`]).
    fn clock(&mut self) -> Result<i64, SearchError>;
    /// An error of this store about `what` (empty: the error alone), without the password.
    fn error(&self, what: &str, e: impl Display) -> SearchError;
    /// Runs `f` on the connection.
    fn with_conn<T>(&mut self, f: impl FnOnce(&mut Self::Conn<'_>) -> T) -> T;
    /// Runs `f` in a transaction, committed when `f` succeeds (SQLite's is `BEGIN IMMEDIATE`:
    /// the write lock taken at once, so concurrent writers queue instead of failing); errors
    /// name `what`.
    fn transaction<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Self::Tx<'_>) -> Result<T, DbError>,
    ) -> Result<T, SearchError>;

    /// Runs one statement outside a transaction; the rows it changed. Errors name `what`.
    fn execute(
        &mut self,
        what: &str,
        query: &str,
        args: &[&dyn Param],
    ) -> Result<u64, SearchError> {
        let done = self.with_conn(|c| c.run(query, args));
        done.map_err(|e| self.error(what, e))
    }

    /// The rows of one query outside a transaction, each read by `read`. Errors name `what`.
    fn query<T>(
        &mut self,
        what: &str,
        query: &str,
        args: &[&dyn Param],
        read: impl FnMut(&Self::Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, SearchError> {
        let rows = self.with_conn(|c| c.rows(query, args, read));
        rows.map_err(|e| self.error(what, e))
    }

    /// Trials as read ([`Row::trial`]); the first corrupt one is an error.
    fn checked(
        &self,
        study: &str,
        rows: Vec<Result<TrialRecord, (u64, String)>>,
    ) -> Result<Vec<TrialRecord>, SearchError> {
        rows.into_iter()
            .map(|row| {
                row.map_err(|(number, message)| SearchError::CorruptTrial {
                    location: self.location().to_string(),
                    study: study.into(),
                    number,
                    message,
                })
            })
            .collect()
    }
}

impl<D: Dialect> Leases for D {
    fn renew(&mut self, what: &str, query: &str, args: &[&dyn Param]) -> Result<bool, SearchError> {
        Ok(self.execute(what, query, args)? == 1)
    }

    fn requeue_lost(
        &mut self,
        study: &str,
        (stale_before_ms, max_attempts, now_ms): Stale,
        [fail, requeue]: [&str; 2],
    ) -> Result<Requeued, SearchError> {
        let (prefix, suffix) = stale_reason(max_attempts, now_ms - stale_before_ms);
        let max = sql_int(max_attempts);
        self.transaction("requeueing lost workers' work", |tx| {
            let args: [&dyn Param; 6] = [&prefix, &suffix, &now_ms, &study, &stale_before_ms, &max];
            let failed = tx.run(fail, &args)?;
            let pending = tx.run(requeue, &[&study, &stale_before_ms])?;
            Ok(Requeued {
                pending: pending as usize,
                failed: failed as usize,
            })
        })
    }
}

/// The key of a claimable row, as a claim's `SELECT` returns it: a trial's number or a rung's
/// `(number, rung)`.
pub trait Key: Sized {
    /// The key of a row.
    fn read(row: &impl Row) -> Result<Self, DbError>;
    /// The key as parameters, in its columns' order.
    fn args(&self) -> Vec<&dyn Param>;
}

impl Key for i64 {
    fn read(row: &impl Row) -> Result<Self, DbError> {
        row.column(0)
    }

    fn args(&self) -> Vec<&dyn Param> {
        vec![self]
    }
}

impl Key for (i64, i32) {
    fn read(row: &impl Row) -> Result<Self, DbError> {
        Ok((row.column(0)?, row.column(1)?))
    }

    fn args(&self) -> Vec<&dyn Param> {
        vec![&self.0, &self.1]
    }
}

/// The statements of a claim: `select` finds the row (`$1` the study; [`Dialect::CLAIM_LOCK`]
/// is appended), `update` marks it claimed (`$1` the time, `$2` the worker, `$3` the study,
/// then the key) and `read` reads it back (`$1` the study, then the key).
pub struct Claim<'a> {
    /// Names the claim in errors.
    pub what: &'a str,
    /// Finds the next claimable row's key.
    pub select: &'a str,
    /// Claims it.
    pub update: &'a str,
    /// Reads it.
    pub read: &'a str,
}

/// Claims for `worker` at `now_ms` the next claimable row of `study`, keyed by `K`, in one
/// transaction that also reads it back with `read_row`; `None` when there is none.
pub fn claim<D: Dialect, K: Key, T>(
    store: &mut D,
    claim: Claim<'_>,
    (study, worker, now_ms): (&str, &str, i64),
    read_row: impl FnMut(&D::Row<'_>) -> Result<T, DbError>,
) -> Result<Option<T>, SearchError> {
    let select = format!("{}{}", claim.select, D::CLAIM_LOCK);
    store.transaction(claim.what, |tx| {
        let Some(key) = tx.rows(&select, &[&study], |r| K::read(r))?.pop() else {
            return Ok(None);
        };
        let mut args: Vec<&dyn Param> = vec![&now_ms, &worker, &study];
        args.extend(key.args());
        tx.run(claim.update, &args)?;
        let mut args: Vec<&dyn Param> = vec![&study];
        args.extend(key.args());
        Ok(tx.rows(claim.read, &args, read_row)?.pop())
    })
}
