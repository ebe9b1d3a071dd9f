//! The rung rows of the PostgreSQL store ([`RungStore`]).

use postgres::Row;

use super::rows::Param;
use super::PostgresStore;
use crate::error::SearchError;
use crate::store::{sql, Requeued, RungRecord, RungStore, TrialStatus};

/// A rung from a row of [`sql::SELECT_RUNGS`]'s columns; `Err` names what is corrupt.
fn row_to_rung(r: &Row) -> Result<RungRecord, String> {
    let e = |e: postgres::Error| e.to_string();
    let status_text: String = r.try_get(3).map_err(e)?;
    let status = TrialStatus::parse(&status_text)
        .ok_or_else(|| format!("unknown rung status `{status_text}`"))?;
    Ok(RungRecord {
        study: r.try_get(0).map_err(e)?,
        number: r.try_get::<_, i64>(1).map_err(e)? as u64,
        rung: r.try_get::<_, i32>(2).map_err(e)? as u32,
        status,
        score: r.try_get(4).map_err(e)?,
        quality: r.try_get(5).map_err(e)?,
        quality_s: r.try_get(6).map_err(e)?,
        attempts: r.try_get::<_, i32>(7).map_err(e)? as u32,
        error: r.try_get(8).map_err(e)?,
        worker: r.try_get(9).map_err(e)?,
        heartbeat_ms: r.try_get(10).map_err(e)?,
        created_ms: r.try_get(11).map_err(e)?,
        started_ms: r.try_get(12).map_err(e)?,
        finished_ms: r.try_get(13).map_err(e)?,
    })
}

/// The key columns of a rung row in their SQL types.
fn key(r: &RungRecord) -> (i64, i32) {
    (r.number as i64, r.rung.min(i32::MAX as u32) as i32)
}

impl PostgresStore {
    /// Rows of a rung query, each checked.
    fn rung_rows(
        &mut self,
        query: &str,
        args: &[Param<'_>],
    ) -> Result<Vec<RungRecord>, SearchError> {
        let rows = self
            .client
            .query(query, args)
            .map_err(|e| self.err("rungs", e))?;
        rows.iter()
            .map(|r| row_to_rung(r).map_err(|m| self.err("rungs", m)))
            .collect()
    }
}

impl RungStore for PostgresStore {
    fn rungs(&mut self, study: &str) -> Result<Vec<RungRecord>, SearchError> {
        self.rung_rows(sql::SELECT_RUNGS, &[&study])
    }

    fn insert_rung(&mut self, r: &RungRecord) -> Result<(), SearchError> {
        let (number, rung) = key(r);
        let attempts = r.attempts.min(i32::MAX as u32) as i32;
        let status = r.status.as_str();
        let args: [Param<'_>; 14] = [
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
        self.client
            .execute(sql::INSERT_RUNG, &args)
            .map_err(|e| self.err(&format!("inserting rung {rung} of trial {number}"), e))?;
        Ok(())
    }

    fn start_rung(&mut self, r: &RungRecord, now_ms: i64) -> Result<(), SearchError> {
        let (number, rung) = key(r);
        self.client
            .execute(sql::START_RUNG, &[&now_ms, &r.study, &number, &rung])
            .map_err(|e| self.err("starting a rung", e))?;
        Ok(())
    }

    fn finish_rung(&mut self, r: &RungRecord, worker: Option<&str>) -> Result<bool, SearchError> {
        let (number, rung) = key(r);
        let status = r.status.as_str();
        let mut args: Vec<Param<'_>> = vec![&status, &r.score, &r.quality, &r.quality_s, &r.error];
        args.extend::<[Param<'_>; 5]>([&r.started_ms, &r.finished_ms, &r.study, &number, &rung]);
        if let Some(w) = &worker {
            args.push(w);
        }
        let query = match worker {
            None => sql::FINISH_RUNG,
            Some(_) => sql::FINISH_RUNG_CLAIMED,
        };
        let n = self
            .client
            .execute(query, &args)
            .map_err(|e| self.err("finishing a rung", e))?;
        Ok(n == 1)
    }

    fn claim_rung(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<RungRecord>, SearchError> {
        let claim = format!("{} FOR UPDATE SKIP LOCKED", sql::CLAIM_RUNG_SELECT);
        let claimed = self.in_transaction("claiming a rung", |tx| {
            let Some(row) = tx.query_opt(claim.as_str(), &[&study])? else {
                return Ok(None);
            };
            let (number, rung): (i64, i32) = (row.get(0), row.get(1));
            let args: [Param<'_>; 5] = [&now_ms, &worker, &study, &number, &rung];
            tx.execute(sql::CLAIM_RUNG_UPDATE, &args)?;
            Ok(Some((number, rung)))
        })?;
        let Some((number, rung)) = claimed else {
            return Ok(None);
        };
        let rows = self.rung_rows(sql::SELECT_RUNG, &[&study, &number, &rung])?;
        Ok(rows.into_iter().next())
    }

    fn rung_heartbeat(
        &mut self,
        r: &RungRecord,
        worker: &str,
        now_ms: i64,
    ) -> Result<bool, SearchError> {
        let (number, rung) = key(r);
        let n = self
            .client
            .execute(
                sql::RUNG_HEARTBEAT,
                &[&now_ms, &r.study, &number, &rung, &worker],
            )
            .map_err(|e| self.err("rung heartbeat", e))?;
        Ok(n == 1)
    }

    fn requeue_running_rungs(&mut self, study: &str) -> Result<usize, SearchError> {
        let n = self
            .client
            .execute(sql::REQUEUE_RUNNING_RUNGS, &[&study])
            .map_err(|e| self.err("requeueing rungs", e))?;
        Ok(n as usize)
    }

    fn requeue_stale_rungs(
        &mut self,
        study: &str,
        stale_before_ms: i64,
        max_attempts: u32,
        now_ms: i64,
    ) -> Result<Requeued, SearchError> {
        let stale = (stale_before_ms, max_attempts, now_ms);
        self.requeue_stale_in(
            study,
            stale,
            [sql::FAIL_STALE_RUNGS, sql::REQUEUE_STALE_RUNGS],
        )
    }
}
