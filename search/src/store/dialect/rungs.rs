//! The [`RungStore`] methods, written once for every [`Dialect`] (the lease upkeep is in the
//! trait's default methods).

use super::{claim, Claim, Dialect, Row};
use crate::error::SearchError;
use crate::store::param::{sql_int, Param};
use crate::store::{sql, RungRecord, RungStore};

/// The statements that claim a rung.
const CLAIM: Claim<'static> = Claim {
    what: "claiming a rung",
    select: sql::CLAIM_RUNG_SELECT,
    update: sql::CLAIM_RUNG_UPDATE,
    read: sql::SELECT_RUNG,
};

impl<D: Dialect> RungStore for D {
    fn rungs(&mut self, study: &str) -> Result<Vec<RungRecord>, SearchError> {
        self.query("rungs", sql::SELECT_RUNGS, &[&study], |r| r.rung())
    }

    fn insert_rung(&mut self, r: &RungRecord) -> Result<(), SearchError> {
        let (number, rung) = r.sql_key();
        let attempts = sql_int(r.attempts);
        let status = r.status.as_str();
        let args: [&dyn Param; 14] = [
            &r.study,
            &number,
            &rung,
            &status,
            &r.score,
            &r.quality,
            &r.quality_s,
            &attempts,
            &r.error,
            &r.worker,
            &r.heartbeat_ms,
            &r.created_ms,
            &r.started_ms,
            &r.finished_ms,
        ];
        let what = format!("inserting rung {rung} of trial {number}");
        self.execute(&what, sql::INSERT_RUNG, &args)?;
        Ok(())
    }

    fn start_rung(&mut self, r: &RungRecord, now_ms: i64) -> Result<(), SearchError> {
        let (number, rung) = r.sql_key();
        let args: [&dyn Param; 4] = [&now_ms, &r.study, &number, &rung];
        self.execute("starting a rung", sql::START_RUNG, &args)?;
        Ok(())
    }

    fn finish_rung(&mut self, r: &RungRecord, worker: Option<&str>) -> Result<bool, SearchError> {
        let (number, rung) = r.sql_key();
        let status = r.status.as_str();
        let mut args: Vec<&dyn Param> = vec![&status, &r.score, &r.quality, &r.quality_s, &r.error];
        args.extend::<[&dyn Param; 5]>([&r.started_ms, &r.finished_ms, &r.study, &number, &rung]);
        if let Some(w) = &worker {
            args.push(w);
        }
        let query = match worker {
            None => sql::FINISH_RUNG,
            Some(_) => sql::FINISH_RUNG_CLAIMED,
        };
        Ok(self.execute("finishing a rung", query, &args)? == 1)
    }

    fn claim_rung(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<RungRecord>, SearchError> {
        claim::<D, (i64, i32), _>(self, CLAIM, (study, worker, now_ms), |r| r.rung())
    }

    fn requeue_running_rungs(&mut self, study: &str) -> Result<usize, SearchError> {
        let n = self.execute("requeueing rungs", sql::REQUEUE_RUNNING_RUNGS, &[&study])?;
        Ok(n as usize)
    }
}
