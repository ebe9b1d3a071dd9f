//! What a run reports: [`Progress`] after every final trial, [`RunSummary`] at the end.

use std::time::Instant;

use super::results::quality_reference;
use super::Study;
use crate::config::StudyConfig;
use crate::store::{RungRecord, TrialRecord, TrialStatus};

/// Reported after every trial (or, with successive halving, rung) that becomes final.
#[derive(Debug)]
pub struct Progress<'a> {
    /// The trial just finished.
    pub trial: &'a TrialRecord,
    /// Final trials so far.
    pub finished: usize,
    /// Trial budget.
    pub total: usize,
    /// Feasible (done) trials so far.
    pub feasible: usize,
    /// Best feasible quality so far: (trial number, quality, latency_ms).
    pub best: Option<(u64, f64, f64)>,
    /// Hypervolume of the feasible (latency, quality) front so far (see
    /// [`StudyConfig::quality_reference`]).
    pub hypervolume: f64,
    /// Seconds since this run started.
    pub elapsed_s: f64,
    /// Trials finished by this run (others came from earlier runs).
    pub finished_this_run: usize,
    /// With successive halving: the rung of `trial` that just finished (`None`: the trial's
    /// own evaluation, rung 0).
    pub rung: Option<&'a RungRecord>,
}

impl<'a> Progress<'a> {
    /// The progress after trial `trials[idx]` became final: counts, best feasible quality and
    /// hypervolume over `trials`, time since `start`.
    pub(crate) fn of(
        cfg: &StudyConfig,
        trials: &'a [TrialRecord],
        idx: usize,
        start: Instant,
        finished_this_run: usize,
    ) -> Self {
        let done: Vec<&TrialRecord> = trials
            .iter()
            .filter(|t| t.status == TrialStatus::Done)
            .collect();
        let best = done
            .iter()
            .filter_map(|t| Some((t.number, t.quality?, t.latency_ms?)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let qref = quality_reference(cfg, trials);
        Self {
            trial: &trials[idx],
            finished: trials.iter().filter(|t| t.status.is_final()).count(),
            total: cfg.trials,
            feasible: done.len(),
            best,
            hypervolume: Study::hypervolume_of(trials, [cfg.latency.budget_ms, qref]),
            elapsed_s: start.elapsed().as_secs_f64(),
            finished_this_run,
            rung: None,
        }
    }
}

/// Counts of one [`Study::run`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    /// Trials that became final in this run.
    pub finished: usize,
    /// Candidates evaluated (cost, latency and possibly quality) in this run.
    pub evaluated: usize,
    /// Quality evaluations in this run.
    pub quality_evaluations: usize,
    /// Duplicates that received a stored result.
    pub reused: usize,
    /// Trials that failed.
    pub failed: usize,
    /// Trials infeasible by prediction.
    pub infeasible: usize,
    /// Trials (and rungs) returned from `running` to `pending` at the start (interrupted
    /// earlier), or from lost workers.
    pub requeued: usize,
    /// Quality evaluations at rungs above 0 (successive halving).
    pub rung_evaluations: usize,
}

impl RunSummary {
    /// Counts `t`, a trial that just became final: reused when it is a duplicate, else
    /// evaluated (with a quality evaluation when it is done or spent time on quality), and
    /// failed or infeasible by its status.
    pub(crate) fn count(&mut self, t: &TrialRecord) {
        self.finished += 1;
        if t.duplicate_of.is_some() {
            self.reused += 1;
        } else {
            self.evaluated += 1;
            if t.status == TrialStatus::Done || t.quality_s.unwrap_or(0.0) > 0.0 {
                self.quality_evaluations += 1;
            }
        }
        match t.status {
            TrialStatus::Failed => self.failed += 1,
            TrialStatus::Infeasible => self.infeasible += 1,
            _ => {}
        }
    }
}
