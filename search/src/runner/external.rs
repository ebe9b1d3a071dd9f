//! The controller of a study whose candidates are evaluated by external workers
//! ([`crate::runner::worker`], `unas worker`), usually on other machines sharing a PostgreSQL store.
//!
//! [`Study::run_external`] only proposes: it writes pending trials into the store, resolves
//! duplicates, and polls the store for results. Proposals follow the same rule as
//! [`Study::run`] — trial `n` is proposed once the trials it may see (`0..visible_before(n)`,
//! see [`crate::strategy`]) are final — so with deterministic evaluations the trials equal an
//! in-process run with the same settings, whatever the number of workers and their timing.
//! Aging evolution with a proposal window W keeps up to W trials open: one child per free
//! slot. Like the workers, the controller returns trials whose worker stopped heart-beating to
//! pending (or fails them at the retry limit), so a study also recovers when every worker died.
//!
//! The controller holds no state besides the store: stop it at any moment and run it again.
//! Run one controller per study.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::engine::halving::Halving;
use crate::engine::ledger::Ledger;
use crate::engine::{Progress, RunSummary, Study};
use crate::error::SearchError;
use crate::store::RungRecord;
use crate::strategy::Controller;

/// Settings of [`Study::run_external`] and of workers' lease handling.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalOptions {
    /// How often the store is polled for results (default 1 s).
    pub poll: Duration,
    /// A running trial whose last heartbeat is older than this lost its worker (default 60 s;
    /// must exceed the workers' heartbeat interval by a margin).
    pub grace: Duration,
    /// Claims of one trial before a lost one is failed instead of requeued (default 3).
    pub max_attempts: u32,
}

impl Default for ExternalOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(60),
            max_attempts: 3,
        }
    }
}

impl Study {
    /// Runs the study's controller against external workers until the trial budget is final
    /// and, with successive halving, no rung is pending or promotable (see the module docs);
    /// promotions are written as pending rungs, which the workers claim before new trials. `progress` is called for every trial that becomes final while
    /// it runs (in trial-number order within one poll). Counts in the summary: `finished`,
    /// `failed`, `infeasible`, `reused` (duplicates) and `requeued` (lost workers' trials);
    /// `evaluated` counts trials finished by workers.
    pub fn run_external(
        &mut self,
        opts: &ExternalOptions,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<RunSummary, SearchError> {
        let cfg = self.config.clone();
        let name = cfg.name.clone();
        let mut controller = Controller::new(
            cfg.controller.clone(),
            self.space.clone(),
            cfg.seed,
            cfg.window(),
        );
        let grace_ms = opts.grace.as_millis().min(i64::MAX as u128) as i64;
        let start = Instant::now();
        let mut summary = RunSummary::default();
        let mut seen_final: Option<HashSet<u64>> = None;
        let halving = Halving::of(cfg.halving.as_ref());
        let mut rungs_before: Option<usize> = None;
        loop {
            let store = self.store.as_mut();
            let now = store.clock_ms()?;
            let r = store.requeue_stale(&name, now - grace_ms, opts.max_attempts, now)?;
            summary.requeued += r.pending;
            let r = store.requeue_stale_rungs(&name, now - grace_ms, opts.max_attempts, now)?;
            summary.requeued += r.pending;
            let mut ledger = Ledger::load(store, &name)?;
            let resolved = ledger.ready(store, &cfg, &mut controller)?;
            // Successive halving: every promotion due now, as pending rungs for the workers.
            let mut rungs = store.rungs(&name)?;
            if let Some(h) = halving {
                while let Some((number, k)) = h.next_promotion(&ledger.trials, &rungs) {
                    let r = RungRecord::pending(&name, number, k);
                    store.insert_rung(&r)?;
                    rungs.push(r);
                }
            }
            let trials = &ledger.trials;
            // Trials final before this run started are not reported.
            let seen = seen_final.get_or_insert_with(|| {
                trials
                    .iter()
                    .filter(|t| t.status.is_final() && !resolved.contains(&t.number))
                    .map(|t| t.number)
                    .collect()
            });
            for (i, t) in trials.iter().enumerate() {
                if t.status.is_final() && seen.insert(t.number) {
                    summary.count(t);
                    progress(&Progress::of(&cfg, trials, i, start, summary.finished));
                }
            }
            let finished_rungs = rungs.iter().filter(|r| r.status.is_final()).count();
            let before = *rungs_before.get_or_insert(finished_rungs);
            summary.rung_evaluations = finished_rungs - before;
            let settled = halving.is_none_or(|h| h.settled(&ledger.trials, &rungs));
            if ledger.complete(cfg.trials) && settled {
                return Ok(summary);
            }
            std::thread::sleep(opts.poll);
        }
    }
}
