//! The rung rows of the SQLite store ([`RungStore`]).

use rusqlite::{params, params_from_iter, OptionalExtension, ToSql};

use super::SqliteStore;
use crate::error::SearchError;
use crate::store::{sql, sqlite_placeholders, Requeued, RungRecord, RungStore, TrialStatus};

/// A rung from a row of [`sql::SELECT_RUNGS`]'s columns; `Err` names what is corrupt.
fn row_to_rung(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RungRecord, String>> {
    let status_text: String = r.get(3)?;
    let Some(status) = TrialStatus::parse(&status_text) else {
        return Ok(Err(format!("unknown rung status `{status_text}`")));
    };
    Ok(Ok(RungRecord {
        study: r.get(0)?,
        number: r.get::<_, i64>(1)? as u64,
        rung: r.get::<_, i64>(2)? as u32,
        status,
        score: r.get(4)?,
        quality: r.get(5)?,
        quality_s: r.get(6)?,
        attempts: r.get::<_, i64>(7)? as u32,
        error: r.get(8)?,
        worker: r.get(9)?,
        heartbeat_ms: r.get(10)?,
        created_ms: r.get(11)?,
        started_ms: r.get(12)?,
        finished_ms: r.get(13)?,
    }))
}

impl SqliteStore {
    fn rung_err(&self, what: &str, e: impl std::fmt::Display) -> SearchError {
        self.err(format!("{what}: {e}"))
    }

    /// Rows of a rung query, each checked.
    fn rung_rows(
        &mut self,
        query: &str,
        args: &[&dyn ToSql],
    ) -> Result<Vec<RungRecord>, SearchError> {
        let mut stmt = self
            .conn
            .prepare(&sqlite_placeholders(query))
            .map_err(|e| self.rung_err("rungs", e))?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), row_to_rung)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.rung_err("rungs", e))?;
        rows.into_iter()
            .map(|r| r.map_err(|m| self.rung_err("rungs", m)))
            .collect()
    }
}

impl RungStore for SqliteStore {
    fn rungs(&mut self, study: &str) -> Result<Vec<RungRecord>, SearchError> {
        self.rung_rows(sql::SELECT_RUNGS, &[&study])
    }

    fn insert_rung(&mut self, r: &RungRecord) -> Result<(), SearchError> {
        let (number, rung) = (r.number as i64, r.rung as i64);
        let attempts = r.attempts as i64;
        let args: [&dyn ToSql; 14] = [
            &r.study,
            &number,
            &rung,
            &r.status.as_str(),
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
        self.conn
            .execute(
                &sqlite_placeholders(sql::INSERT_RUNG),
                params_from_iter(args),
            )
            .map_err(|e| {
                self.rung_err(&format!("inserting rung {} of trial {number}", r.rung), e)
            })?;
        Ok(())
    }

    fn start_rung(&mut self, r: &RungRecord, now_ms: i64) -> Result<(), SearchError> {
        let key = (r.number as i64, r.rung as i64);
        self.conn
            .execute(
                &sqlite_placeholders(sql::START_RUNG),
                params![now_ms, r.study, key.0, key.1],
            )
            .map_err(|e| self.rung_err("starting a rung", e))?;
        Ok(())
    }

    fn finish_rung(&mut self, r: &RungRecord, worker: Option<&str>) -> Result<bool, SearchError> {
        let key = (r.number as i64, r.rung as i64);
        let status = r.status.as_str();
        let mut args: Vec<&dyn ToSql> = vec![&status, &r.score, &r.quality, &r.quality_s, &r.error];
        args.extend::<[&dyn ToSql; 5]>([&r.started_ms, &r.finished_ms, &r.study, &key.0, &key.1]);
        if let Some(w) = &worker {
            args.push(w);
        }
        let query = match worker {
            None => sql::FINISH_RUNG,
            Some(_) => sql::FINISH_RUNG_CLAIMED,
        };
        let n = self
            .conn
            .execute(&sqlite_placeholders(query), params_from_iter(args))
            .map_err(|e| self.rung_err("finishing a rung", e))?;
        Ok(n == 1)
    }

    fn claim_rung(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<RungRecord>, SearchError> {
        let claimed = self.immediate("claiming a rung", |tx| {
            let select = sqlite_placeholders(sql::CLAIM_RUNG_SELECT);
            let key: Option<(i64, i64)> = tx
                .query_row(&select, [study], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if let Some((number, rung)) = key {
                let update = sqlite_placeholders(sql::CLAIM_RUNG_UPDATE);
                tx.execute(&update, params![now_ms, worker, study, number, rung])?;
            }
            Ok(key)
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
        let key = (r.number as i64, r.rung as i64);
        let n = self
            .conn
            .execute(
                &sqlite_placeholders(sql::RUNG_HEARTBEAT),
                params![now_ms, r.study, key.0, key.1, worker],
            )
            .map_err(|e| self.rung_err("rung heartbeat", e))?;
        Ok(n == 1)
    }

    fn requeue_running_rungs(&mut self, study: &str) -> Result<usize, SearchError> {
        self.conn
            .execute(&sqlite_placeholders(sql::REQUEUE_RUNNING_RUNGS), [study])
            .map_err(|e| self.rung_err("requeueing rungs", e))
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
