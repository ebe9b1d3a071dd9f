//! The reference archs of a study (e.g. SD1.5-like): evaluated like trials in a companion study
//! `<name>::references` of the same store, with their quality scored even over a constraint.

use std::sync::{mpsc, Mutex};

use unas_space::UNetArch;

use crate::config::{ConstraintsConfig, StudyConfig};
use crate::engine::ledger::{self, eval_seed};
use crate::engine::Study;
use crate::error::SearchError;
use crate::objective::{evaluate_candidate, evaluate_rung, Evaluators, Outcome, Violations};
use crate::store::{now_ms, RungRecord, StudyRecord, TrialRecord, TrialStatus};
use crate::strategy::Origin;

/// Evaluates a reference arch like a trial, except that its quality is scored even when it
/// violates a constraint (so reports can place it); it is then recorded as infeasible, with
/// its quality and violations.
fn evaluate_reference(
    arch: &UNetArch,
    seed: u64,
    cfg: &StudyConfig,
    ev: Evaluators<'_>,
) -> Outcome {
    let mut relaxed = cfg.latency.clone();
    relaxed.budget_ms = f64::INFINITY;
    let mut out = evaluate_candidate(arch, seed, &relaxed, &ConstraintsConfig::default(), ev);
    let excess = |v: f64, cap: f64| if v > cap { (v - cap) / cap } else { 0.0 };
    if let (Some(lat), Some(params), Some(macs)) = (out.latency_ms, out.params, out.macs) {
        out.violations = Violations {
            latency: excess(lat, cfg.latency.budget_ms),
            params: cfg
                .constraints
                .max_params
                .map_or(0.0, |m| excess(params as f64, m as f64)),
            macs: cfg
                .constraints
                .max_macs
                .map_or(0.0, |m| excess(macs as f64, m as f64)),
        };
        if out.violations.total() > 0.0 && out.status == TrialStatus::Done {
            out.status = TrialStatus::Infeasible;
            out.error = Some(format!(
                "{} (a reference: scored anyway)",
                out.violations.describe()
            ));
        }
    }
    out
}

impl Study {
    /// Evaluates the reference archs that are not final yet (on `jobs` threads) as trials
    /// are evaluated (same latency model and quality evaluator; seed from the study seed and
    /// the arch hash), except that quality is scored even over a constraint (the record is
    /// then `infeasible` with its quality). They live in a companion study `<name>::references`
    /// of the same store, so they never count against the trial budget, never become parents,
    /// and resume like trials. `done` is called after each one becomes final. [`Study::run`]
    /// calls this first.
    pub fn run_references(
        &mut self,
        ev: Evaluators<'_>,
        done: &mut dyn FnMut(&TrialRecord),
    ) -> Result<usize, SearchError> {
        if self.config.references.is_empty() {
            return Ok(0);
        }
        let name = self.references_study();
        if self.store.study(&name)?.is_none() {
            self.store.create_study(&StudyRecord {
                name: name.clone(),
                settings: serde_json::json!({ "references_of": self.config.name }).to_string(),
                seed: self.config.seed,
                created_ms: now_ms(),
            })?;
        }
        self.store.requeue_running(&name)?;
        let mut records = self.store.trials(&name)?;
        for (i, spec) in self
            .config
            .references
            .iter()
            .enumerate()
            .skip(records.len())
        {
            let mut arch = unas_space::load_arch(spec)?;
            if arch.name.is_empty() {
                arch.name = spec.clone();
            }
            // A time-to-image study runs references at its reference step count (e.g.
            // SD1.5-like at 50), unless their file names one.
            if arch.sampling_steps.is_none() {
                arch.sampling_steps = self.config.latency.reference_step_count();
            }
            let record = TrialRecord::pending(
                &name,
                i as u64,
                arch,
                serde_json::to_string(&Origin::Reference { name: spec.clone() })
                    .expect("origin serialises"),
                eval_seed(self.config.seed),
                None,
            );
            self.store.insert_trial(&record)?;
            records.push(record);
        }
        let todo: Vec<usize> = (0..records.len())
            .filter(|&i| !records[i].status.is_final())
            .collect();
        for &i in &todo {
            ledger::start(self.store.as_mut(), &mut records[i])?;
        }
        let cfg = &self.config;
        let next = Mutex::new(todo.clone().into_iter());
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        let store = &mut self.store;
        let mut finished = Vec::new();
        std::thread::scope(|scope| -> Result<(), SearchError> {
            for _ in 0..self.jobs.max(1).min(todo.len()) {
                let tx = tx.clone();
                let next = &next;
                let records = &records;
                scope.spawn(move || loop {
                    let Some(i) = next.lock().ok().and_then(|mut it| it.next()) else {
                        return;
                    };
                    let r = &records[i];
                    let out = evaluate_reference(&r.arch, r.eval_seed, cfg, ev);
                    if tx.send((i, out)).is_err() {
                        return;
                    }
                });
            }
            drop(tx);
            for (i, out) in rx {
                let mut t = records[i].clone();
                ledger::finish(store.as_mut(), &mut t, &out)?;
                done(&t);
                finished.push(t);
            }
            Ok(())
        })?;
        for t in finished {
            let i = t.number as usize;
            records[i] = t;
        }
        self.score_reference_rungs(&name, &records, ev)?;
        Ok(todo.len())
    }

    /// With successive halving, every scored reference is also scored at every higher rung
    /// (one after the other; resumable: finished rungs are kept), so the report compares it
    /// with the trials at the rung they reached.
    fn score_reference_rungs(
        &mut self,
        name: &str,
        records: &[TrialRecord],
        ev: Evaluators<'_>,
    ) -> Result<(), SearchError> {
        let Some(h) = crate::engine::halving::Halving::of(self.config.halving.as_ref()) else {
            return Ok(());
        };
        self.store.requeue_running_rungs(name)?;
        let mut rungs = self.store.rungs(name)?;
        for t in records.iter().filter(|t| t.quality.is_some()) {
            for k in 1..h.rungs {
                let at = |r: &RungRecord| (r.number, r.rung) == (t.number, k);
                let mut r = match rungs.iter().find(|r| at(r)) {
                    Some(r) if r.status.is_final() => continue,
                    Some(r) => r.clone(),
                    None => {
                        let r = RungRecord::pending(name, t.number, k);
                        self.store.insert_rung(&r)?;
                        rungs.push(r.clone());
                        r
                    }
                };
                ledger::start_rung(self.store.as_mut(), &mut r)?;
                evaluate_rung(&t.arch, t.eval_seed, &mut r, ev);
                self.store.finish_rung(&r, None)?;
            }
        }
        Ok(())
    }
}
