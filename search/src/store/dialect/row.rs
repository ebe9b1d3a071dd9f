//! Reading records from either database's rows: a [`Row`] gives its columns as any
//! [`Value`], and the study, lease and rung rows are read from those once for both.

use super::DbError;
use crate::store::{Lease, RungRecord, StudyRecord, TrialRecord, TrialStatus};

/// A column type that either database reads (`i32`, `i64`, `f64`, `String` and their
/// `Option`s).
pub trait Value: for<'a> postgres::types::FromSql<'a> + rusqlite::types::FromSql {}

impl<T: for<'a> postgres::types::FromSql<'a> + rusqlite::types::FromSql> Value for T {}

/// A row of either database.
pub trait Row {
    /// Column `i` (from 0).
    fn column<T: Value>(&self, i: usize) -> Result<T, DbError>;

    /// The trial of a row with the columns of [`crate::store::sql::SELECT_TRIALS`];
    /// `Err((number, what is corrupt))` for a trial that cannot be decoded.
    fn trial(&self) -> Result<Result<TrialRecord, (u64, String)>, DbError>;

    /// The study of a row with the columns of [`crate::store::sql::SELECT_STUDY`].
    fn study(&self) -> Result<StudyRecord, DbError> {
        Ok(StudyRecord {
            name: self.column(0)?,
            settings: self.column(1)?,
            seed: self.column::<i64>(2)? as u64,
            created_ms: self.column(3)?,
        })
    }

    /// The lease of a row with the columns of [`crate::store::sql::SELECT_LEASES`].
    fn lease(&self) -> Result<Lease, DbError> {
        Ok(Lease {
            number: self.column::<i64>(0)? as u64,
            worker: self.column(1)?,
            heartbeat_ms: self.column(2)?,
        })
    }

    /// The rung of a row with the columns of [`crate::store::sql::SELECT_RUNGS`].
    fn rung(&self) -> Result<RungRecord, DbError> {
        let status_text: String = self.column(3)?;
        let status = TrialStatus::parse(&status_text)
            .ok_or_else(|| format!("unknown rung status `{status_text}`"))?;
        Ok(RungRecord {
            study: self.column(0)?,
            number: self.column::<i64>(1)? as u64,
            rung: self.column::<i32>(2)? as u32,
            status,
            score: self.column(4)?,
            quality: self.column(5)?,
            quality_s: self.column(6)?,
            attempts: self.column::<i32>(7)? as u32,
            error: self.column(8)?,
            worker: self.column(9)?,
            heartbeat_ms: self.column(10)?,
            created_ms: self.column(11)?,
            started_ms: self.column(12)?,
            finished_ms: self.column(13)?,
        })
    }
}
