//! Trial rows of the PostgreSQL store: reading one, and the parameters of the statements
//! that write one.

use postgres::types::ToSql;
use postgres::Row;
use unas_space::UNetArch;

use crate::store::{TrialRecord, TrialStatus};

/// A trial from a row of [`crate::store::sql::SELECT_TRIALS`]'s columns; `Err` names the trial number (0
/// when unknown) and what is corrupt.
pub(super) fn row_to_trial(r: &Row) -> Result<TrialRecord, (u64, String)> {
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

/// One statement parameter.
pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// Parameters of [`crate::store::sql::INSERT_TRIAL`] (the arch as JSON).
pub(super) struct TrialParams {
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
    pub(super) fn of(t: &TrialRecord) -> Result<Self, serde_json::Error> {
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

    /// The result columns shared by both statements: `latency_ms` … `block_latency`.
    fn results<'a>(&'a self, t: &'a TrialRecord) -> [&'a (dyn ToSql + Sync); 7] {
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

    /// The parameters of [`crate::store::sql::INSERT_TRIAL`] (`$1`…`$22`).
    pub(super) fn insert<'a>(&'a self, t: &'a TrialRecord) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut v: Vec<&(dyn ToSql + Sync)> = vec![&t.study, &self.number, &t.hash, &self.arch];
        v.extend::<[Param<'a>; 3]>([&t.origin, &self.status, &self.duplicate_of]);
        v.extend(self.results(t));
        v.extend::<[Param<'a>; 3]>([&self.eval_seed, &t.latency_s, &t.quality_s]);
        v.extend::<[Param<'a>; 3]>([&self.attempts, &t.error, &t.created_ms]);
        v.extend::<[Param<'a>; 2]>([&t.started_ms, &t.finished_ms]);
        v
    }

    /// The parameters of [`crate::store::sql::FINISH_TRIAL`] (`$1`…`$15`).
    pub(super) fn finish<'a>(&'a self, t: &'a TrialRecord) -> Vec<&'a (dyn ToSql + Sync)> {
        let mut v: Vec<&(dyn ToSql + Sync)> = vec![&self.status];
        v.extend(self.results(t));
        v.extend::<[Param<'a>; 3]>([&t.latency_s, &t.quality_s, &t.error]);
        v.extend::<[Param<'a>; 4]>([&t.started_ms, &t.finished_ms, &t.study, &self.number]);
        v
    }
}
