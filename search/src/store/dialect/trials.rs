//! The [`Store`] methods, written once for every [`Dialect`].

use super::{claim, Claim, Dialect, Row, Statements, TrialParams};
use crate::error::SearchError;
use crate::store::param::Param;
use crate::store::{sql, Lease, Store, StudyRecord, TrialRecord};

/// The statements that claim a trial.
const CLAIM: Claim<'static> = Claim {
    what: "claiming a trial",
    select: sql::CLAIM_SELECT,
    update: sql::CLAIM_UPDATE,
    read: sql::SELECT_TRIAL,
};

/// Writes a trial's result ([`sql::FINISH_TRIAL`]), or with `worker`, only while that worker
/// holds its lease ([`sql::FINISH_CLAIMED`]); whether a row was written.
fn finish<D: Dialect>(
    store: &mut D,
    t: &TrialRecord,
    worker: Option<&str>,
) -> Result<bool, SearchError> {
    let p = TrialParams::of(t).map_err(|e| store.error("", e))?;
    let mut args = p.finish(t);
    if let Some(w) = &worker {
        args.push(w);
    }
    let query = match worker {
        None => sql::FINISH_TRIAL,
        Some(_) => sql::FINISH_CLAIMED,
    };
    let what = format!("finishing trial {}", t.number);
    Ok(store.execute(&what, query, &args)? == 1)
}

impl<D: Dialect> Store for D {
    fn location(&self) -> String {
        Dialect::location(self).to_string()
    }

    fn schema_version(&mut self) -> Result<i64, SearchError> {
        let found = self.query("", sql::CURRENT_VERSION, &[], |r| {
            r.column::<Option<i64>>(0)
        })?;
        Ok(found.into_iter().flatten().next().unwrap_or(0))
    }

    fn create_study(&mut self, s: &StudyRecord) -> Result<(), SearchError> {
        let seed = s.seed as i64;
        let args: [&dyn Param; 4] = [&s.name, &s.settings, &seed, &s.created_ms];
        let what = format!("creating study `{}`", s.name);
        self.execute(&what, sql::INSERT_STUDY, &args)?;
        Ok(())
    }

    fn study(&mut self, name: &str) -> Result<Option<StudyRecord>, SearchError> {
        let found = self.query("", sql::SELECT_STUDY, &[&name], |r| r.study())?;
        Ok(found.into_iter().next())
    }

    fn study_names(&mut self) -> Result<Vec<String>, SearchError> {
        self.query("", sql::STUDY_NAMES, &[], |r| r.column(0))
    }

    fn trials(&mut self, study: &str) -> Result<Vec<TrialRecord>, SearchError> {
        let rows = self.query("", sql::SELECT_TRIALS, &[&study], |r| r.trial())?;
        self.checked(study, rows)
    }

    fn insert_trial(&mut self, t: &TrialRecord) -> Result<(), SearchError> {
        let what = format!("inserting trial {}", t.number);
        let p = TrialParams::of(t).map_err(|e| self.error(&what, e))?;
        self.execute(&what, sql::INSERT_TRIAL, &p.insert(t))?;
        Ok(())
    }

    fn mark_running(
        &mut self,
        study: &str,
        number: u64,
        started_ms: i64,
    ) -> Result<(), SearchError> {
        let number = number as i64;
        self.execute("", sql::MARK_RUNNING, &[&started_ms, &study, &number])?;
        Ok(())
    }

    fn finish_trial(&mut self, t: &TrialRecord) -> Result<(), SearchError> {
        finish(self, t, None)?;
        Ok(())
    }

    fn requeue_running(&mut self, study: &str) -> Result<usize, SearchError> {
        Ok(self.execute("", sql::REQUEUE_RUNNING, &[&study])? as usize)
    }

    fn clock_ms(&mut self) -> Result<i64, SearchError> {
        self.clock()
    }

    fn claim_trial(
        &mut self,
        study: &str,
        worker: &str,
        now_ms: i64,
    ) -> Result<Option<TrialRecord>, SearchError> {
        let found = claim::<D, i64, _>(self, CLAIM, (study, worker, now_ms), |r| r.trial())?;
        Ok(self.checked(study, found.into_iter().collect())?.pop())
    }

    fn finish_claimed(&mut self, t: &TrialRecord, worker: &str) -> Result<bool, SearchError> {
        finish(self, t, Some(worker))
    }

    fn leases(&mut self, study: &str) -> Result<Vec<Lease>, SearchError> {
        self.query("", sql::SELECT_LEASES, &[&study], |r| r.lease())
    }

    fn import_study(
        &mut self,
        study: &StudyRecord,
        trials: &[TrialRecord],
        leases: &[Lease],
    ) -> Result<(), SearchError> {
        // The rows' parameters first: a trial that cannot be written stops the copy before it
        // starts.
        let what = format!("importing study `{}`", study.name);
        let params = trials
            .iter()
            .map(TrialParams::of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(&what, e))?;
        let inserts: Vec<_> = trials
            .iter()
            .zip(&params)
            .map(|(t, p)| p.insert(t))
            .collect();
        let numbers: Vec<i64> = leases.iter().map(|l| l.number as i64).collect();
        let set_leases: Vec<Vec<&dyn Param>> = leases
            .iter()
            .zip(&numbers)
            .map(|(l, n)| vec![&l.worker as &dyn Param, &l.heartbeat_ms, &study.name, n])
            .collect();
        let seed = study.seed as i64;
        self.transaction(&what, |tx| {
            let args: [&dyn Param; 4] = [&study.name, &study.settings, &seed, &study.created_ms];
            tx.run(sql::INSERT_STUDY, &args)?;
            tx.run_each(sql::INSERT_TRIAL, &inserts)?;
            tx.run_each(sql::SET_LEASE, &set_leases)
        })
    }
}
