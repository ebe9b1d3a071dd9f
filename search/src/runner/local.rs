//! The in-process runner: [`Study::run`] evaluates the trials on `jobs` threads of this
//! process, over the engine's steps ([`crate::engine`]).

use std::sync::{mpsc, Mutex};
use std::time::Instant;

use unas_space::UNetArch;

use crate::engine::ledger::{self, Ledger};
use crate::engine::{Progress, RunSummary, Study};
use crate::error::SearchError;
use crate::objective::{evaluate_candidate, Evaluators, Outcome};
use crate::store::TrialStatus;
use crate::strategy::Controller;

/// One evaluation handed to a thread.
struct Job {
    number: u64,
    arch: UNetArch,
    eval_seed: u64,
}

impl Study {
    /// Runs the study until its trial budget is final; resumes an interrupted run (trials left
    /// `running` are requeued first). The reference archs are evaluated first
    /// ([`Study::run_references`]). Pending trials go to free threads lowest number first.
    /// `progress` is called after every trial that becomes final.
    pub fn run(
        &mut self,
        ev: Evaluators<'_>,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<RunSummary, SearchError> {
        self.run_references(ev, &mut |_| {})?;
        let name = self.config.name.clone();
        let mut summary = RunSummary {
            requeued: self.store.requeue_running(&name)?,
            ..Default::default()
        };
        let mut ledger = Ledger::load(self.store.as_mut(), &name)?;
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
            let (res_tx, res_rx) = mpsc::channel::<(u64, Outcome)>();
            for _ in 0..jobs {
                let res_tx = res_tx.clone();
                let job_rx = &job_rx;
                let cfg = &cfg;
                scope.spawn(move || loop {
                    let Ok(Ok(job)) = job_rx.lock().map(|rx| rx.recv()) else {
                        return;
                    };
                    let out = evaluate_candidate(
                        &job.arch,
                        job.eval_seed,
                        &cfg.latency,
                        &cfg.constraints,
                        ev,
                    );
                    if res_tx.send((job.number, out)).is_err() {
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
                    // Dispatch pending evaluations to free threads, lowest number first.
                    for t in ledger.trials.iter_mut() {
                        if in_flight >= jobs {
                            break;
                        }
                        if t.status != TrialStatus::Pending || t.duplicate_of.is_some() {
                            continue;
                        }
                        ledger::start(store.as_mut(), t)?;
                        in_flight += 1;
                        let job = Job {
                            number: t.number,
                            arch: t.arch.clone(),
                            eval_seed: t.eval_seed,
                        };
                        job_tx.send(job).map_err(|_| stopped())?;
                    }
                    if in_flight == 0 {
                        if ledger.complete(budget) {
                            return Ok(());
                        }
                        return Err(SearchError::Controller(format!(
                            "study `{name}` cannot make progress ({} of {budget} trials proposed)",
                            ledger.trials.len()
                        )));
                    }
                    let (number, out) = res_rx.recv().map_err(|_| stopped())?;
                    in_flight -= 1;
                    let idx = number as usize;
                    ledger::finish(store.as_mut(), &mut ledger.trials[idx], &out)?;
                    summary.count(&ledger.trials[idx]);
                    progress(&Progress::of(
                        &cfg,
                        &ledger.trials,
                        idx,
                        start,
                        summary.finished,
                    ));
                }
            })();
            drop(job_tx);
            result
        })?;
        Ok(summary)
    }
}
