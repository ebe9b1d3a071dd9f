//! Rows of the PostgreSQL store: its columns, and the trial's own mapping.

use postgres::Row;
use unas_space::UNetArch;

use crate::store::dialect::{self, DbError, Value};
use crate::store::{TrialRecord, TrialStatus};

impl dialect::Row for Row {
    fn column<T: Value>(&self, i: usize) -> Result<T, DbError> {
        Ok(self.try_get(i)?)
    }

    fn trial(&self) -> Result<Result<TrialRecord, (u64, String)>, DbError> {
        Ok(row_to_trial(self))
    }
}

/// A trial from a row of [`crate::store::sql::SELECT_TRIALS`]'s columns; `Err` names the trial number (0
/// when unknown) and what is corrupt.
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
