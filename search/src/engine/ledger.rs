//! The engine's steps over a study's trials, shared by every runner: load them, make the ready
//! ones (resolve duplicates, propose what the window allows), start one, finish one. Each step
//! writes the store before it returns, so a runner killed between two steps loses nothing final.

use std::collections::HashMap;

use crate::config::StudyConfig;
use crate::error::SearchError;
use crate::objective::Outcome;
use crate::store::{now_ms, RungRecord, Store, TrialRecord, TrialStatus};
use crate::strategy::{splitmix, Controller};

/// Seed passed to the quality evaluator for every candidate of a study (trials and reference
/// archs alike): derived from the study seed alone, so all candidates train with common random
/// numbers (the same data order, timesteps and noise; their initialisations come from the same
/// generator stream), and differences between them are not drowned in seed-to-seed noise.
/// Duplicates and resumed runs see the same seed, as each trial records it.
pub fn eval_seed(study_seed: u64) -> u64 {
    splitmix(study_seed ^ 0x6576_616c_5eed)
}

/// A study's trials as read from its store (numbered `0..len`), with the first trial of every
/// arch hash.
pub(crate) struct Ledger {
    /// The trials, by number.
    pub trials: Vec<TrialRecord>,
    known: HashMap<String, u64>,
}

impl Ledger {
    /// Reads the trials of `study` and checks that their numbers are `0..len`.
    pub fn load(store: &mut dyn Store, study: &str) -> Result<Self, SearchError> {
        let trials = store.trials(study)?;
        for (i, t) in trials.iter().enumerate() {
            if t.number != i as u64 {
                return Err(SearchError::CorruptTrial {
                    location: store.location(),
                    study: study.into(),
                    number: i as u64,
                    message: "trial numbers are not contiguous".into(),
                });
            }
        }
        let mut known = HashMap::new();
        for t in &trials {
            known.entry(t.hash.clone()).or_insert(t.number);
        }
        Ok(Self { trials, known })
    }

    /// Whether the trial budget is proposed and every trial final.
    pub fn complete(&self, budget: usize) -> bool {
        self.trials.len() >= budget && self.trials.iter().all(|t| t.status.is_final())
    }

    /// Resolves pending duplicates whose source is final and proposes every trial the
    /// controller's window allows (trial `n` once trials `0..visible_before(n)` are final),
    /// writing each to the store; repeats until nothing changes. Returns the numbers of the
    /// duplicates resolved (now final).
    pub fn ready(
        &mut self,
        store: &mut dyn Store,
        cfg: &StudyConfig,
        controller: &mut Controller,
    ) -> Result<Vec<u64>, SearchError> {
        let mut resolved = Vec::new();
        let mut changed = true;
        while changed {
            changed = false;
            for i in 0..self.trials.len() {
                let Some(m) = self.trials[i].duplicate_of else {
                    continue;
                };
                let src = &self.trials[m as usize];
                if self.trials[i].status != TrialStatus::Pending || !src.status.is_final() {
                    continue;
                }
                let src = src.clone();
                let t = &mut self.trials[i];
                t.reuse_result_of(&src);
                store.finish_trial(t)?;
                resolved.push(t.number);
                changed = true;
            }
            while self.trials.len() < cfg.trials {
                let n = self.trials.len() as u64;
                let vis = controller.visible_before(n) as usize;
                if !self.trials[..vis].iter().all(|t| t.status.is_final()) {
                    break;
                }
                self.propose(store, cfg, controller)?;
                changed = true;
            }
        }
        Ok(resolved)
    }

    /// Proposes trial `len` and writes it as pending (a duplicate points at the first trial of
    /// its hash).
    fn propose(
        &mut self,
        store: &mut dyn Store,
        cfg: &StudyConfig,
        controller: &mut Controller,
    ) -> Result<(), SearchError> {
        let n = self.trials.len() as u64;
        let p = controller.propose(n, &self.trials, &self.known)?;
        let hash = p.arch.hash_id();
        let record = TrialRecord::pending(
            &cfg.name,
            n,
            p.arch,
            serde_json::to_string(&p.origin).expect("origin serialises"),
            eval_seed(cfg.seed),
            self.known.get(&hash).copied(),
        );
        store.insert_trial(&record)?;
        self.known.entry(hash).or_insert(n);
        self.trials.push(record);
        Ok(())
    }
}

/// Marks `t` running in the store (one more attempt, started now).
pub(crate) fn start(store: &mut dyn Store, t: &mut TrialRecord) -> Result<(), SearchError> {
    let now = now_ms();
    store.mark_running(&t.study, t.number, now)?;
    t.status = TrialStatus::Running;
    t.attempts += 1;
    t.started_ms = Some(now);
    Ok(())
}

/// Marks rung row `r` running in the store (one more attempt, started now).
pub(crate) fn start_rung(store: &mut dyn Store, r: &mut RungRecord) -> Result<(), SearchError> {
    let now = now_ms();
    store.start_rung(r, now)?;
    (r.status, r.started_ms, r.attempts) = (TrialStatus::Running, Some(now), r.attempts + 1);
    Ok(())
}

/// Writes an evaluation's result into a trial record (finished now).
pub(crate) fn apply_outcome(t: &mut TrialRecord, out: &Outcome) {
    t.status = out.status;
    t.latency_ms = out.latency_ms;
    t.quality = out.quality.as_ref().map(|q| q.score);
    t.params = out.params;
    t.macs = out.macs;
    t.violation = Some(out.violations.total());
    t.objectives = Some(out.objectives_json());
    t.block_latency = Some(serde_json::to_string(&out.blocks).expect("blocks serialise"));
    t.latency_s = Some(out.latency_s);
    t.quality_s = Some(out.quality_s);
    t.error = out.error.clone();
    t.finished_ms = Some(now_ms());
}

/// Applies `out` to `t` and writes it to the store as final.
pub(crate) fn finish(
    store: &mut dyn Store,
    t: &mut TrialRecord,
    out: &Outcome,
) -> Result<(), SearchError> {
    apply_outcome(t, out);
    store.finish_trial(t)
}
