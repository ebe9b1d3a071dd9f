//! Trial rows of the SQLite store: reading one, inserting one, loading one by key.

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use unas_space::UNetArch;

use super::SqliteStore;
use crate::error::SearchError;
use crate::store::{sql, sqlite_placeholders, TrialRecord, TrialStatus};

/// A trial from a row of [`sql::SELECT_TRIALS`]'s columns; `Err` names what is corrupt.
pub(super) fn row_to_trial(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TrialRecord, String>> {
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

impl SqliteStore {
    /// One trial by key.
    pub(super) fn trial(
        &mut self,
        study: &str,
        number: u64,
    ) -> Result<Option<TrialRecord>, SearchError> {
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

/// One statement parameter.
type Param<'a> = &'a dyn ToSql;

/// A trial's values in SQLite's column types (`u64` bit-cast to `i64`, the arch as JSON).
pub(super) struct TrialValues {
    status: &'static str,
    number: i64,
    arch: String,
    duplicate_of: Option<i64>,
    params: Option<i64>,
    macs: Option<i64>,
    eval_seed: i64,
    attempts: i64,
}

impl TrialValues {
    /// The values of `t`.
    pub(super) fn of(t: &TrialRecord) -> rusqlite::Result<Self> {
        let i = |v: Option<u64>| v.map(|x| x as i64);
        Ok(Self {
            status: t.status.as_str(),
            number: t.number as i64,
            arch: serde_json::to_string(&t.arch)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            duplicate_of: i(t.duplicate_of),
            params: i(t.params),
            macs: i(t.macs),
            eval_seed: t.eval_seed as i64,
            attempts: t.attempts as i64,
        })
    }

    /// The result columns shared by both statements: `latency_ms` … `block_latency`.
    fn results<'a>(&'a self, t: &'a TrialRecord) -> [&'a dyn ToSql; 7] {
        let (latency, quality, violation) = (&t.latency_ms, &t.quality, &t.violation);
        let (objectives, blocks) = (&t.objectives, &t.block_latency);
        [
            latency,
            quality,
            &self.params,
            &self.macs,
            violation,
            objectives,
            blocks,
        ]
    }

    /// The parameters of [`sql::INSERT_TRIAL`] (`$1`…`$22`).
    pub(super) fn insert<'a>(&'a self, t: &'a TrialRecord) -> Vec<&'a dyn ToSql> {
        let mut v: Vec<&dyn ToSql> = vec![&t.study, &self.number, &t.hash, &self.arch];
        v.extend::<[Param<'a>; 3]>([&t.origin, &self.status, &self.duplicate_of]);
        v.extend(self.results(t));
        v.extend::<[Param<'a>; 3]>([&self.eval_seed, &t.latency_s, &t.quality_s]);
        v.extend::<[Param<'a>; 3]>([&self.attempts, &t.error, &t.created_ms]);
        v.extend::<[Param<'a>; 2]>([&t.started_ms, &t.finished_ms]);
        v
    }

    /// The parameters of [`sql::FINISH_TRIAL`] (`$1`…`$15`; [`sql::FINISH_CLAIMED`] adds the
    /// worker as `$16`).
    pub(super) fn finish<'a>(&'a self, t: &'a TrialRecord) -> Vec<&'a dyn ToSql> {
        let mut v: Vec<&dyn ToSql> = vec![&self.status];
        v.extend(self.results(t));
        v.extend::<[Param<'a>; 3]>([&t.latency_s, &t.quality_s, &t.error]);
        v.extend::<[Param<'a>; 4]>([&t.started_ms, &t.finished_ms, &t.study, &self.number]);
        v
    }
}

/// Inserts a trial (every column).
pub(super) fn insert_trial(conn: &Connection, t: &TrialRecord) -> rusqlite::Result<usize> {
    let v = TrialValues::of(t)?;
    conn.execute(
        &sqlite_placeholders(sql::INSERT_TRIAL),
        params_from_iter(v.insert(t)),
    )
}
