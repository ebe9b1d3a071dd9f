//! The parameters of the statements that write a trial, in both databases' column types.

use crate::store::param::{sql_int, Param};
use crate::store::TrialRecord;

/// A trial's values in its columns' SQL types (`u64` bit-cast to `BIGINT`, the attempts an
/// `INTEGER`, the arch as JSON), for [`crate::store::sql::INSERT_TRIAL`] and
/// [`crate::store::sql::FINISH_TRIAL`].
pub struct TrialParams {
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
    /// The values of `t`.
    pub fn of(t: &TrialRecord) -> Result<Self, serde_json::Error> {
        let i = |v: Option<u64>| v.map(|x| x as i64);
        Ok(Self {
            status: t.status.as_str(),
            number: t.number as i64,
            arch: serde_json::to_string(&t.arch)?,
            duplicate_of: i(t.duplicate_of),
            params: i(t.params),
            macs: i(t.macs),
            eval_seed: t.eval_seed as i64,
            attempts: sql_int(t.attempts),
        })
    }

    /// The result columns shared by both statements: `latency_ms` … `block_latency`.
    fn results<'a>(&'a self, t: &'a TrialRecord) -> [&'a dyn Param; 7] {
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
    pub fn insert<'a>(&'a self, t: &'a TrialRecord) -> Vec<&'a dyn Param> {
        let mut v: Vec<&dyn Param> = vec![&t.study, &self.number, &t.hash, &self.arch];
        v.extend::<[&dyn Param; 3]>([&t.origin, &self.status, &self.duplicate_of]);
        v.extend(self.results(t));
        v.extend::<[&dyn Param; 3]>([&self.eval_seed, &t.latency_s, &t.quality_s]);
        v.extend::<[&dyn Param; 3]>([&self.attempts, &t.error, &t.created_ms]);
        v.extend::<[&dyn Param; 2]>([&t.started_ms, &t.finished_ms]);
        v
    }

    /// The parameters of [`crate::store::sql::FINISH_TRIAL`] (`$1`…`$15`;
    /// [`crate::store::sql::FINISH_CLAIMED`] adds the worker as `$16`).
    pub fn finish<'a>(&'a self, t: &'a TrialRecord) -> Vec<&'a dyn Param> {
        let mut v: Vec<&dyn Param> = vec![&self.status];
        v.extend(self.results(t));
        v.extend::<[&dyn Param; 3]>([&t.latency_s, &t.quality_s, &t.error]);
        v.extend::<[&dyn Param; 4]>([&t.started_ms, &t.finished_ms, &t.study, &self.number]);
        v
    }
}
