//! Rows of the SQLite store: its columns, and the trial's own mapping.

use rusqlite::Row;
use unas_space::UNetArch;

use crate::store::dialect::{self, DbError, Value};
use crate::store::{TrialRecord, TrialStatus};

impl dialect::Row for Row<'_> {
    fn column<T: Value>(&self, i: usize) -> Result<T, DbError> {
        Ok(self.get(i)?)
    }

    fn trial(&self) -> Result<Result<TrialRecord, (u64, String)>, DbError> {
        Ok(row_to_trial(self)?)
    }
}

/// A trial from a row of [`crate::store::sql::SELECT_TRIALS`]'s columns; `Err` names the
/// trial number and what is corrupt (the message starting with the number).
fn row_to_trial(r: &Row<'_>) -> rusqlite::Result<Result<TrialRecord, (u64, String)>> {
    let study: String = r.get(0)?;
    let number: i64 = r.get(1)?;
    let arch_text: String = r.get(3)?;
    let status_text: String = r.get(5)?;
    let arch = match serde_json::from_str::<UNetArch>(&arch_text) {
        Ok(a) => a,
        Err(e) => return Ok(Err((number as u64, format!("{number}: arch: {e}")))),
    };
    let Some(status) = TrialStatus::parse(&status_text) else {
        let message = format!("{number}: unknown status `{status_text}`");
        return Ok(Err((number as u64, message)));
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
