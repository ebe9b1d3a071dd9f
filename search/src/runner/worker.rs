//! Stateless workers: `unas worker --store URL --study NAME`.
//!
//! A [`Worker`] loops: return lost trials to pending ([`Store::requeue_stale`]), claim the
//! lowest-numbered pending trial ([`Store::claim_trial`]), evaluate it exactly as
//! [`Study::run`] would ([`evaluate_candidate`]: cost and latency first, quality only when
//! feasible), and write the result while still holding the trial ([`Store::finish_claimed`]).
//! While it evaluates, a second connection renews the lease every `heartbeat`; a worker that
//! dies (or hangs without heart-beating) loses its trial after the grace period, and a worker
//! that comes back after losing its lease discards its result, so no trial is ever finished
//! twice. The database is the only state: kill a worker at any moment and start another.

use std::sync::mpsc;
use std::time::Duration;

use super::external::ExternalOptions;
use crate::config::StudyConfig;
use crate::engine::halving::Halving;
use crate::engine::ledger::apply_outcome;
use crate::engine::Study;
use crate::error::SearchError;
use crate::objective::{evaluate_candidate, evaluate_rung, Evaluators};
use crate::store::{now_ms, open_store, Requeued, RungRecord, Store, TrialRecord};

/// How a worker runs.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerOptions {
    /// Worker id stored with its claims (default [`default_worker_id`]).
    pub id: String,
    /// Lease renewal interval while evaluating (default 10 s).
    pub heartbeat: Duration,
    /// Grace period, retry limit and idle poll interval (see [`ExternalOptions`]).
    pub lease: ExternalOptions,
    /// Evaluate at most one trial, and exit at once when none is pending.
    pub once: bool,
    /// Stop after this many evaluations (default: run until the study is complete).
    pub max_trials: Option<usize>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            id: default_worker_id(),
            heartbeat: Duration::from_secs(10),
            lease: ExternalOptions::default(),
            once: false,
            max_trials: None,
        }
    }
}

/// `host:pid:nonce` (the nonce tells apart workers that reuse a pid).
pub fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    let nonce = crate::strategy::splitmix(now_ms() as u64 ^ ((std::process::id() as u64) << 32));
    format!("{host}:{}:{:08x}", std::process::id(), nonce as u32)
}

/// What a worker did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Trials evaluated and written.
    pub evaluated: usize,
    /// Rungs above 0 evaluated and written (successive halving).
    pub rungs_evaluated: usize,
    /// Trials or rungs evaluated but discarded because the lease was lost meanwhile.
    pub discarded: usize,
    /// Lost trials this worker returned to pending (or failed at the retry limit).
    pub requeued: Requeued,
}

/// Something a worker reports while running (for logs).
#[derive(Debug)]
pub enum WorkerEvent<'a> {
    /// A trial was claimed.
    Claimed(&'a TrialRecord),
    /// A trial's result was written.
    Finished(&'a TrialRecord),
    /// A promoted rung was claimed (successive halving).
    ClaimedRung(&'a RungRecord),
    /// A rung's result was written.
    FinishedRung(&'a RungRecord),
    /// A result was discarded: the lease had been lost (trial number).
    Discarded(u64),
    /// Lost trials were requeued or failed.
    Requeued(Requeued),
    /// A heartbeat failed (the evaluation goes on; the lease may expire).
    HeartbeatError(&'a SearchError),
    /// Nothing to claim; waiting for the controller to propose.
    Idle,
}

/// A worker bound to one study of one store.
pub struct Worker {
    spec: String,
    study: Study,
}

impl Worker {
    /// Opens `study` in the store at `spec` (a path or URL, see [`open_store`]).
    pub fn open(spec: &str, study: &str) -> Result<Self, SearchError> {
        let store = open_store(spec)?;
        Ok(Self {
            spec: spec.to_string(),
            study: Study::open_in(store, study)?,
        })
    }

    /// The study's stored configuration (to build its evaluators).
    pub fn config(&self) -> &StudyConfig {
        self.study.config()
    }

    /// The study's search space (as stored at creation).
    pub fn space(&self) -> &unas_space::SearchSpace {
        self.study.space()
    }

    /// Claims and evaluates trials (and, with successive halving, promoted rungs, which go
    /// first) until the study is complete (every trial of the budget final, no rung pending
    /// or promotable), `max_trials` evaluations, or — with `once` — one evaluation or none
    /// pending.
    pub fn run(
        &mut self,
        opts: &WorkerOptions,
        ev: Evaluators<'_>,
        on_event: &mut dyn FnMut(WorkerEvent<'_>),
    ) -> Result<WorkerSummary, SearchError> {
        let cfg = self.study.config().clone();
        let name = cfg.name.clone();
        let halving = Halving::of(cfg.halving.as_ref());
        self.study.check_rungs(halving, ev)?;
        let grace_ms = opts.lease.grace.as_millis().min(i64::MAX as u128) as i64;
        let mut summary = WorkerSummary::default();
        let mut beat_store: Option<Box<dyn Store>> = None;
        let mut done_here = 0usize;
        loop {
            if opts.max_trials.is_some_and(|m| done_here >= m) {
                return Ok(summary);
            }
            let store = self.study.store();
            let now = store.clock_ms()?;
            let (max, stale) = (opts.lease.max_attempts, now - grace_ms);
            let mut r = store.requeue_stale(&name, stale, max, now)?;
            let rr = store.requeue_stale_rungs(&name, stale, max, now)?;
            (r.pending, r.failed) = (r.pending + rr.pending, r.failed + rr.failed);
            if r != Requeued::default() {
                summary.requeued.pending += r.pending;
                summary.requeued.failed += r.failed;
                on_event(WorkerEvent::Requeued(r));
            }
            let now = store.clock_ms()?;
            if beat_store.is_none() {
                beat_store = Some(open_store(&self.spec)?);
            }
            let beats = beat_store.as_deref_mut().expect("opened above");
            let (id, every) = (opts.id.as_str(), opts.heartbeat);
            if let Some(mut rung) = store.claim_rung(&name, id, now)? {
                let trials = store.trials(&name)?;
                let trial = trials.get(rung.number as usize).ok_or_else(|| {
                    SearchError::Controller(format!("rung of a missing trial {}", rung.number))
                })?;
                on_event(WorkerEvent::ClaimedRung(&rung));
                let key = rung.clone();
                let beat = move |s: &mut dyn Store, now| s.rung_heartbeat(&key, id, now);
                let (_, errors) = heart_beating(beats, every, beat, || {
                    evaluate_rung(&trial.arch, trial.eval_seed, &mut rung, ev)
                });
                for e in &errors {
                    on_event(WorkerEvent::HeartbeatError(e));
                }
                done_here += 1;
                if self.study.store().finish_rung(&rung, Some(id))? {
                    summary.rungs_evaluated += 1;
                    on_event(WorkerEvent::FinishedRung(&rung));
                } else {
                    summary.discarded += 1;
                    on_event(WorkerEvent::Discarded(rung.number));
                }
            } else if let Some(mut trial) = store.claim_trial(&name, id, now)? {
                on_event(WorkerEvent::Claimed(&trial));
                let (study, number) = (name.as_str(), trial.number);
                let beat = move |s: &mut dyn Store, now| s.heartbeat(study, number, id, now);
                let (out, errors) = heart_beating(beats, every, beat, || {
                    let (lat, cons) = (&cfg.latency, &cfg.constraints);
                    evaluate_candidate(&trial.arch, trial.eval_seed, lat, cons, ev)
                });
                for e in &errors {
                    on_event(WorkerEvent::HeartbeatError(e));
                }
                apply_outcome(&mut trial, &out);
                done_here += 1;
                if self.study.store().finish_claimed(&trial, id)? {
                    summary.evaluated += 1;
                    on_event(WorkerEvent::Finished(&trial));
                } else {
                    summary.discarded += 1;
                    on_event(WorkerEvent::Discarded(trial.number));
                }
            } else {
                if opts.once {
                    return Ok(summary);
                }
                let trials = store.trials(&name)?;
                let complete =
                    trials.len() >= cfg.trials && trials.iter().all(|t| t.status.is_final());
                let settled = match halving {
                    Some(h) => h.settled(&trials, &store.rungs(&name)?),
                    None => true,
                };
                if complete && settled {
                    return Ok(summary);
                }
                on_event(WorkerEvent::Idle);
                std::thread::sleep(opts.lease.poll);
                continue;
            }
            if opts.once {
                return Ok(summary);
            }
        }
    }
}

/// Runs `work` while a second thread renews the lease through `beats` every `every` (`beat`
/// returns `false` once the lease is lost, which stops the renewals); returns the work's
/// result and the renewals' errors.
fn heart_beating<T>(
    beats: &mut dyn Store,
    every: Duration,
    beat: impl Fn(&mut dyn Store, i64) -> Result<bool, SearchError> + Send,
    work: impl FnOnce() -> T,
) -> (T, Vec<SearchError>) {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let beating = scope.spawn(move || {
            let mut errors = Vec::new();
            while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                match beats.clock_ms().and_then(|now| beat(beats, now)) {
                    Ok(true) => {}
                    // Lost: stop renewing; the result will be discarded.
                    Ok(false) => break,
                    Err(e) => errors.push(e),
                }
            }
            errors
        });
        let out = work();
        drop(stop_tx);
        (out, beating.join().unwrap_or_default())
    })
}
