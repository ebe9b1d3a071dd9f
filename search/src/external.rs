//! The controller of a study whose candidates are evaluated by external workers
//! ([`crate::worker`], `unas worker`), usually on other machines sharing a PostgreSQL store.
//!
//! [`Study::run_external`] only proposes: it writes pending trials into the store, resolves
//! duplicates, and polls the store for results. Proposals follow the same rule as
//! [`Study::run`] — trial `n` is proposed once the trials it may see (`0..visible_before(n)`,
//! see [`crate::controller`]) are final — so with deterministic evaluations the trials equal an
//! in-process run with the same settings, whatever the number of workers and their timing.
//! Aging evolution with a proposal window W keeps up to W trials open: one child per free
//! slot. Like the workers, the controller returns trials whose worker stopped heart-beating to
//! pending (or fails them at the retry limit), so a study also recovers when every worker died.
//!
//! The controller holds no state besides the store: stop it at any moment and run it again.
//! Run one controller per study.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::controller::Controller;
use crate::error::SearchError;
use crate::store::{Store, TrialRecord, TrialStatus};
use crate::study::{eval_seed, Progress, RunSummary, Study};
use crate::StudyConfig;

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

/// Proposes trial `trials.len()` with `controller`, writes it to the store as pending (a
/// duplicate points at the first trial of its hash) and appends it to `trials` and `known`.
pub(crate) fn propose_next(
    store: &mut dyn Store,
    cfg: &StudyConfig,
    controller: &mut Controller,
    trials: &mut Vec<TrialRecord>,
    known: &mut HashMap<String, u64>,
) -> Result<(), SearchError> {
    let n = trials.len() as u64;
    let p = controller.propose(n, trials, known)?;
    let hash = p.arch.hash_id();
    let record = TrialRecord::pending(
        &cfg.name,
        n,
        p.arch,
        serde_json::to_string(&p.origin).expect("origin serialises"),
        eval_seed(cfg.seed),
        known.get(&hash).copied(),
    );
    store.insert_trial(&record)?;
    known.entry(hash).or_insert(n);
    trials.push(record);
    Ok(())
}

/// Resolves pending duplicates whose source is final and proposes every trial the window
/// allows, writing each to the store; repeats until nothing changes. Returns the numbers of
/// the duplicates resolved.
pub(crate) fn propose_ready(
    store: &mut dyn Store,
    cfg: &StudyConfig,
    controller: &mut Controller,
    trials: &mut Vec<TrialRecord>,
    known: &mut HashMap<String, u64>,
) -> Result<Vec<u64>, SearchError> {
    let budget = cfg.trials;
    let mut resolved = Vec::new();
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..trials.len() {
            let Some(m) = trials[i].duplicate_of else {
                continue;
            };
            if trials[i].status != TrialStatus::Pending || !trials[m as usize].status.is_final() {
                continue;
            }
            let src = trials[m as usize].clone();
            let t = &mut trials[i];
            t.reuse_result_of(&src);
            store.finish_trial(t)?;
            resolved.push(t.number);
            changed = true;
        }
        while trials.len() < budget {
            let n = trials.len() as u64;
            let vis = controller.visible_before(n) as usize;
            if !trials[..vis].iter().all(|t| t.status.is_final()) {
                break;
            }
            propose_next(store, cfg, controller, trials, known)?;
            changed = true;
        }
    }
    Ok(resolved)
}

/// Checks that trial numbers are `0..len`.
pub(crate) fn check_contiguous(
    location: &str,
    study: &str,
    trials: &[TrialRecord],
) -> Result<(), SearchError> {
    for (i, t) in trials.iter().enumerate() {
        if t.number != i as u64 {
            return Err(SearchError::CorruptTrial {
                location: location.into(),
                study: study.into(),
                number: i as u64,
                message: "trial numbers are not contiguous".into(),
            });
        }
    }
    Ok(())
}

impl Study {
    /// Runs the study's controller against external workers until the trial budget is final
    /// (see the module docs). `progress` is called for every trial that becomes final while
    /// it runs (in trial-number order within one poll). Counts in the summary: `finished`,
    /// `failed`, `infeasible`, `reused` (duplicates) and `requeued` (lost workers' trials);
    /// `evaluated` counts trials finished by workers.
    pub fn run_external(
        &mut self,
        opts: &ExternalOptions,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<RunSummary, SearchError> {
        let cfg = self.config().clone();
        let name = cfg.name.clone();
        let mut controller = Controller::new(
            cfg.controller.clone(),
            self.space().clone(),
            cfg.seed,
            cfg.window(),
        );
        let grace_ms = opts.grace.as_millis().min(i64::MAX as u128) as i64;
        let start = Instant::now();
        let mut summary = RunSummary::default();
        let mut seen_final: Option<HashSet<u64>> = None;
        loop {
            let store = self.store();
            let location = store.location();
            let now = store.clock_ms()?;
            let r = store.requeue_stale(&name, now - grace_ms, opts.max_attempts, now)?;
            summary.requeued += r.pending;
            let mut trials = store.trials(&name)?;
            check_contiguous(&location, &name, &trials)?;
            let mut known: HashMap<String, u64> = HashMap::new();
            for t in &trials {
                known.entry(t.hash.clone()).or_insert(t.number);
            }
            let resolved = propose_ready(store, &cfg, &mut controller, &mut trials, &mut known)?;
            // Trials final before this run started are not reported.
            let seen = seen_final.get_or_insert_with(|| {
                trials
                    .iter()
                    .filter(|t| t.status.is_final() && !resolved.contains(&t.number))
                    .map(|t| t.number)
                    .collect()
            });
            for i in 0..trials.len() {
                let t = &trials[i];
                if !t.status.is_final() || !seen.insert(t.number) {
                    continue;
                }
                summary.finished += 1;
                if t.duplicate_of.is_some() {
                    summary.reused += 1;
                } else {
                    summary.evaluated += 1;
                    if t.status == TrialStatus::Done
                        || (t.status == TrialStatus::Failed && t.quality_s.unwrap_or(0.0) > 0.0)
                    {
                        summary.quality_evaluations += 1;
                    }
                }
                match t.status {
                    TrialStatus::Failed => summary.failed += 1,
                    TrialStatus::Infeasible => summary.infeasible += 1,
                    _ => {}
                }
                progress(&Progress::of(&cfg, &trials, i, start, summary.finished));
            }
            if trials.len() >= cfg.trials && trials.iter().all(|t| t.status.is_final()) {
                return Ok(summary);
            }
            std::thread::sleep(opts.poll);
        }
    }
}
