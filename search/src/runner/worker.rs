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
use crate::engine::ledger::apply_outcome;
use crate::engine::Study;
use crate::error::SearchError;
use crate::objective::{evaluate_candidate, Evaluators};
use crate::store::{now_ms, open_store, Requeued, Store, TrialRecord};

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
    /// Trials evaluated but discarded because the lease was lost meanwhile.
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

    /// Claims and evaluates trials until the study is complete (every trial of the budget
    /// final), `max_trials` evaluations, or — with `once` — one trial or none pending.
    pub fn run(
        &mut self,
        opts: &WorkerOptions,
        ev: Evaluators<'_>,
        on_event: &mut dyn FnMut(WorkerEvent<'_>),
    ) -> Result<WorkerSummary, SearchError> {
        let cfg = self.study.config().clone();
        let name = cfg.name.clone();
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
            let r = store.requeue_stale(&name, now - grace_ms, opts.lease.max_attempts, now)?;
            if r != Requeued::default() {
                summary.requeued.pending += r.pending;
                summary.requeued.failed += r.failed;
                on_event(WorkerEvent::Requeued(r));
            }
            let now = store.clock_ms()?;
            let Some(mut trial) = store.claim_trial(&name, &opts.id, now)? else {
                if opts.once {
                    return Ok(summary);
                }
                let trials = store.trials(&name)?;
                if trials.len() >= cfg.trials && trials.iter().all(|t| t.status.is_final()) {
                    return Ok(summary);
                }
                on_event(WorkerEvent::Idle);
                std::thread::sleep(opts.lease.poll);
                continue;
            };
            on_event(WorkerEvent::Claimed(&trial));
            if beat_store.is_none() {
                beat_store = Some(open_store(&self.spec)?);
            }
            let beats = beat_store.as_deref_mut().expect("opened above");
            let (stop_tx, stop_rx) = mpsc::channel::<()>();
            let (number, id, every) = (trial.number, opts.id.as_str(), opts.heartbeat);
            let name_ref = name.as_str();
            let (out, beat_errors) = std::thread::scope(|scope| {
                let beating = scope.spawn(move || {
                    let mut errors = Vec::new();
                    while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                        let r = beats
                            .clock_ms()
                            .and_then(|now| beats.heartbeat(name_ref, number, id, now));
                        match r {
                            Ok(true) => {}
                            // Lost: stop renewing; the result will be discarded.
                            Ok(false) => break,
                            Err(e) => errors.push(e),
                        }
                    }
                    errors
                });
                let out = evaluate_candidate(
                    &trial.arch,
                    trial.eval_seed,
                    &cfg.latency,
                    &cfg.constraints,
                    ev,
                );
                drop(stop_tx);
                (out, beating.join().unwrap_or_default())
            });
            for e in &beat_errors {
                on_event(WorkerEvent::HeartbeatError(e));
            }
            apply_outcome(&mut trial, &out);
            done_here += 1;
            if self.study.store().finish_claimed(&trial, &opts.id)? {
                summary.evaluated += 1;
                on_event(WorkerEvent::Finished(&trial));
            } else {
                summary.discarded += 1;
                on_event(WorkerEvent::Discarded(trial.number));
            }
            if opts.once {
                return Ok(summary);
            }
        }
    }
}
