//! The in-process runner: [`Study::run`] evaluates the trials (and, with successive halving,
//! their promotions to higher rungs) on `jobs` threads of this process, over the engine's
//! steps ([`crate::engine`]).

use std::sync::{mpsc, Mutex};
use std::time::Instant;

use unas_space::UNetArch;

use crate::engine::halving::Halving;
use crate::engine::ledger::{self, Ledger};
use crate::engine::{Progress, RunSummary, Study};
use crate::error::SearchError;
use crate::objective::{evaluate_candidate, evaluate_rung, Evaluators, Outcome};
use crate::store::{RungRecord, Store, TrialStatus};
use crate::strategy::Controller;

/// One evaluation handed to a thread: a trial (rung 0), or a trial at a higher rung.
struct Job {
    number: u64,
    arch: UNetArch,
    eval_seed: u64,
    rung: Option<RungRecord>,
}

/// What a thread hands back.
enum Done {
    Trial(u64, Outcome),
    Rung(RungRecord),
}

impl Job {
    fn run(mut self, cfg: &crate::StudyConfig, ev: Evaluators<'_>) -> Done {
        match self.rung.take() {
            None => Done::Trial(
                self.number,
                evaluate_candidate(
                    &self.arch,
                    self.eval_seed,
                    &cfg.latency,
                    &cfg.constraints,
                    ev,
                ),
            ),
            Some(mut r) => {
                evaluate_rung(&self.arch, self.eval_seed, &mut r, ev);
                Done::Rung(r)
            }
        }
    }
}

/// The next evaluation for a free thread, started in the store: a pending rung (resumed; the
/// highest first), else a promotion, else the lowest-numbered pending trial.
fn next_job(
    store: &mut dyn Store,
    ledger: &mut Ledger,
    rungs: &mut Vec<RungRecord>,
    halving: Option<Halving>,
) -> Result<Option<Job>, SearchError> {
    let pending = |rungs: &[RungRecord]| {
        (0..rungs.len())
            .filter(|&i| rungs[i].status == TrialStatus::Pending)
            .min_by_key(|&i| (std::cmp::Reverse(rungs[i].rung), rungs[i].number))
    };
    if let (None, Some(h)) = (pending(rungs), halving) {
        if let Some((number, k)) = h.next_promotion(&ledger.trials, rungs) {
            let r = RungRecord::pending(&ledger.trials[number as usize].study, number, k);
            store.insert_rung(&r)?;
            rungs.push(r);
        }
    }
    if let Some(i) = pending(rungs) {
        ledger::start_rung(store, &mut rungs[i])?;
        let r = &rungs[i];
        let t = &ledger.trials[r.number as usize];
        return Ok(Some(Job {
            number: t.number,
            arch: t.arch.clone(),
            eval_seed: t.eval_seed,
            rung: Some(r.clone()),
        }));
    }
    let next = ledger
        .trials
        .iter_mut()
        .find(|t| t.status == TrialStatus::Pending && t.duplicate_of.is_none());
    let Some(t) = next else {
        return Ok(None);
    };
    ledger::start(store, t)?;
    Ok(Some(Job {
        number: t.number,
        arch: t.arch.clone(),
        eval_seed: t.eval_seed,
        rung: None,
    }))
}

impl Study {
    /// Runs the study until its trial budget is final (and, with successive halving, no rung
    /// is pending and none promotable); resumes an interrupted run (trials and rungs left
    /// `running` are requeued first). The reference archs are evaluated first
    /// ([`Study::run_references`]). A free thread takes a pending rung (the highest first),
    /// else a promotion, else the lowest-numbered pending trial. `progress` is called after
    /// every trial or rung that becomes final.
    pub fn run(
        &mut self,
        ev: Evaluators<'_>,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<RunSummary, SearchError> {
        let halving = Halving::of(self.config.halving.as_ref());
        self.check_rungs(halving, ev)?;
        self.run_references(ev, &mut |_| {})?;
        let name = self.config.name.clone();
        let mut summary = RunSummary {
            requeued: self.store.requeue_running(&name)?,
            ..Default::default()
        };
        summary.requeued += self.store.requeue_running_rungs(&name)?;
        let mut ledger = Ledger::load(self.store.as_mut(), &name)?;
        let mut rungs = self.store.rungs(&name)?;
        let mut controller = Controller::new(
            self.config.controller.clone(),
            self.space.clone(),
            self.config.seed,
            self.config.window(),
        );
        let budget = self.config.trials;
        let jobs = self.jobs.max(1);
        let cfg = self.config.clone();
        let start = Instant::now();
        let store = &mut self.store;
        let stopped = || SearchError::Controller("worker threads stopped".into());

        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Mutex::new(job_rx);
        std::thread::scope(|scope| -> Result<(), SearchError> {
            let (res_tx, res_rx) = mpsc::channel::<Done>();
            for _ in 0..jobs {
                let res_tx = res_tx.clone();
                let job_rx = &job_rx;
                let cfg = &cfg;
                scope.spawn(move || loop {
                    let Ok(Ok(job)) = job_rx.lock().map(|rx| rx.recv()) else {
                        return;
                    };
                    if res_tx.send(job.run(cfg, ev)).is_err() {
                        return;
                    }
                });
            }
            drop(res_tx);
            let mut in_flight = 0usize;
            let result = (|| -> Result<(), SearchError> {
                loop {
                    for n in ledger.ready(store.as_mut(), &cfg, &mut controller)? {
                        summary.count(&ledger.trials[n as usize]);
                        let p =
                            Progress::of(&cfg, &ledger.trials, n as usize, start, summary.finished);
                        progress(&p);
                    }
                    while in_flight < jobs {
                        let job = next_job(store.as_mut(), &mut ledger, &mut rungs, halving)?;
                        let Some(job) = job else { break };
                        in_flight += 1;
                        job_tx.send(job).map_err(|_| stopped())?;
                    }
                    if in_flight == 0 {
                        let settled = halving.is_none_or(|h| h.settled(&ledger.trials, &rungs));
                        if ledger.complete(budget) && settled {
                            return Ok(());
                        }
                        return Err(SearchError::Controller(format!(
                            "study `{name}` cannot make progress ({} of {budget} trials proposed)",
                            ledger.trials.len()
                        )));
                    }
                    let done = res_rx.recv().map_err(|_| stopped())?;
                    in_flight -= 1;
                    let (idx, rung) = match done {
                        Done::Trial(number, out) => {
                            let idx = number as usize;
                            ledger::finish(store.as_mut(), &mut ledger.trials[idx], &out)?;
                            summary.count(&ledger.trials[idx]);
                            (idx, None)
                        }
                        Done::Rung(r) => {
                            store.finish_rung(&r, None)?;
                            summary.rung_evaluations += 1;
                            let i = rungs
                                .iter()
                                .position(|x| (x.number, x.rung) == (r.number, r.rung))
                                .expect("a started rung");
                            rungs[i] = r;
                            (rungs[i].number as usize, Some(i))
                        }
                    };
                    let mut p = Progress::of(&cfg, &ledger.trials, idx, start, summary.finished);
                    p.rung = rung.map(|i| &rungs[i]);
                    progress(&p);
                }
            })();
            drop(job_tx);
            result
        })?;
        Ok(summary)
    }

    /// With successive halving, the quality evaluator must offer every configured rung.
    pub(crate) fn check_rungs(
        &self,
        h: Option<Halving>,
        ev: Evaluators<'_>,
    ) -> Result<(), SearchError> {
        match h {
            Some(h) if ev.quality.rungs() < h.rungs as usize => Err(SearchError::InvalidConfig {
                field: "halving.rungs".into(),
                message: format!(
                    "{} rungs configured; the quality evaluator ({}) offers {}",
                    h.rungs,
                    ev.quality.describe(),
                    ev.quality.rungs()
                ),
            }),
            _ => Ok(()),
        }
    }
}
