//! A study: configuration, trial store and the run loop.
//!
//! The store is the only state. [`Study::run`] requeues trials left `running` by an
//! interrupted run, rebuilds the controller from the stored trials, proposes the remaining
//! trials in number order and evaluates them on `jobs` worker threads. Every proposal, start
//! and result is written before the next step, so after a `kill -9` at any moment nothing
//! finished is lost, nothing finished is evaluated again, and in-flight trials re-run.
//!
//! Reproducibility: trial `n`'s proposal depends only on the study seed, `n` and the results
//! of the trials the controller lets it see (see [`crate::controller`]); the evaluator gets a
//! seed derived from the study seed and the arch hash. With a deterministic evaluator the same
//! settings therefore give the same trials (archs, results) whatever `jobs` is and however the
//! run was interrupted; `jobs` only changes speed. The proposal window (`window`, default
//! `jobs` at creation) is part of the settings.
//!
//! Duplicates: a proposal whose hash an earlier trial already has is recorded with
//! `duplicate_of` and receives that trial's result once it is final; it is never evaluated.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{mpsc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use unas_space::{SearchSpace, UNetArch};

use crate::config::{ConstraintsConfig, StudyConfig};
use crate::controller::{splitmix, Controller, Origin};
use crate::error::SearchError;
use crate::external::propose_next;
use crate::objective::{evaluate_candidate, Evaluators, Outcome, Violations};
use crate::pareto::{hypervolume_2d, knee_point, pareto_front_2d};
use crate::store::{now_ms, SqliteStore, Store, StudyRecord, TrialRecord, TrialStatus};

/// What is stored as a study's settings: the normalised config and the resolved space.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoredSettings {
    /// The study configuration (`window` made explicit).
    pub config: StudyConfig,
    /// The search space as resolved at creation.
    pub space: SearchSpace,
}

/// Reported after every trial that becomes final.
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
    /// Trials returned from `running` to `pending` at the start (interrupted earlier).
    pub requeued: usize,
}

/// The outcome of a study so far.
#[derive(Clone, Debug)]
pub struct StudyResults {
    /// Whether any trial is feasible.
    pub feasible: bool,
    /// The feasible Pareto front over (latency, quality), one trial per arch, by latency;
    /// when no trial is feasible, the least-violating trials (up to 5) by violation.
    pub front: Vec<TrialRecord>,
    /// Trial number of the front's knee (feasible fronts only).
    pub knee: Option<u64>,
    /// Hypervolume of the feasible front.
    pub hypervolume: f64,
    /// Reference point (budget_ms, quality reference) of the hypervolume.
    pub reference: [f64; 2],
    /// Trials per status.
    pub counts: BTreeMap<String, usize>,
}

/// Suffix of the companion study that holds a study's reference archs (`<name>::references`).
pub const REFERENCES_SUFFIX: &str = "::references";

/// A study bound to its store.
pub struct Study {
    store: Box<dyn Store>,
    config: StudyConfig,
    space: SearchSpace,
    jobs: usize,
}

struct Job {
    number: u64,
    arch: UNetArch,
    eval_seed: u64,
}

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

/// The hypervolume reference quality: the configured one, else the worst done quality.
fn quality_reference(config: &StudyConfig, trials: &[TrialRecord]) -> f64 {
    config.quality_reference.unwrap_or_else(|| {
        trials
            .iter()
            .filter(|t| t.status == TrialStatus::Done)
            .filter_map(|t| t.quality)
            .fold(f64::NEG_INFINITY, f64::max)
    })
}

/// Seed passed to the quality evaluator for every candidate of a study (trials and reference
/// archs alike): derived from the study seed alone, so all candidates train with common random
/// numbers (the same data order, timesteps and noise; their initialisations come from the same
/// generator stream), and differences between them are not drowned in seed-to-seed noise.
/// Duplicates and resumed runs see the same seed, as each trial records it.
pub fn eval_seed(study_seed: u64) -> u64 {
    splitmix(study_seed ^ 0x6576_616c_5eed)
}

fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_difference(u, v, &p) {
                            return Some(d);
                        }
                    }
                    _ => return Some(p),
                }
            }
            None
        }
        _ if a == b => None,
        _ => Some(if path.is_empty() {
            "<settings>".into()
        } else {
            path.into()
        }),
    }
}

impl Study {
    /// Creates the study in `dir` (its SQLite store is `dir/study.sqlite`), or reopens it if
    /// the store already holds a study of that name with the same settings (`jobs` may differ).
    pub fn create(dir: &Path, config: StudyConfig) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|source| SearchError::Io {
            file: dir.to_path_buf(),
            source,
        })?;
        let store = SqliteStore::open(&SqliteStore::file_in(dir))?;
        Self::create_in(Box::new(store), config)
    }

    /// Like [`Study::create`] with any store.
    pub fn create_in(mut store: Box<dyn Store>, config: StudyConfig) -> Result<Self, SearchError> {
        config
            .check()
            .map_err(|(field, message)| SearchError::InvalidConfig { field, message })?;
        let mut config = config;
        config.window = Some(config.window());
        let jobs = config.jobs;
        let space = config.load_space()?;
        let settings = StoredSettings {
            config: config.clone(),
            space,
        };
        if store.study(&config.name)?.is_some() {
            let mut study = Self::open_in(store, &config.name)?;
            let mut want = serde_json::to_value(&settings).expect("settings serialise");
            let mut have = serde_json::to_value(StoredSettings {
                config: study.config.clone(),
                space: study.space.clone(),
            })
            .expect("settings serialise");
            for v in [&mut want, &mut have] {
                v["config"]["jobs"] = serde_json::Value::Null;
            }
            if let Some(field) = first_difference(&have, &want, "") {
                return Err(SearchError::SettingsMismatch {
                    location: study.store.location(),
                    study: config.name.clone(),
                    field,
                });
            }
            study.jobs = jobs;
            return Ok(study);
        }
        store.create_study(&StudyRecord {
            name: config.name.clone(),
            settings: serde_json::to_string(&settings).expect("settings serialise"),
            seed: config.seed,
            created_ms: now_ms(),
        })?;
        Ok(Self {
            store,
            space: settings.space,
            config,
            jobs,
        })
    }

    /// Reopens the study in a run directory with its stored settings (`--resume RUN_DIR`).
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let file = SqliteStore::file_in(dir);
        if !file.is_file() {
            return Err(SearchError::NoStudy {
                dir: dir.to_path_buf(),
                file,
            });
        }
        let mut store = SqliteStore::open(&file)?;
        let names: Vec<String> = store
            .study_names()?
            .into_iter()
            .filter(|n| !n.ends_with(REFERENCES_SUFFIX))
            .collect();
        match names.as_slice() {
            [] => Err(SearchError::NoStudy {
                dir: dir.to_path_buf(),
                file,
            }),
            [name] => {
                let name = name.clone();
                Self::open_in(Box::new(store), &name)
            }
            _ => Err(SearchError::Store {
                location: store.location(),
                message: format!(
                    "holds several studies ({}); open one by name",
                    names.join(", ")
                ),
            }),
        }
    }

    /// Opens a study by name in a store, with its stored settings.
    pub fn open_in(mut store: Box<dyn Store>, name: &str) -> Result<Self, SearchError> {
        let location = store.location();
        let record = store.study(name)?.ok_or_else(|| SearchError::Store {
            location: location.clone(),
            message: format!("no study named `{name}`"),
        })?;
        let settings: StoredSettings =
            serde_json::from_str(&record.settings).map_err(|e| SearchError::Store {
                location,
                message: format!("study `{name}`: stored settings unreadable: {e}"),
            })?;
        Ok(Self {
            store,
            jobs: settings.config.jobs,
            config: settings.config,
            space: settings.space,
        })
    }

    /// The (normalised) configuration.
    pub fn config(&self) -> &StudyConfig {
        &self.config
    }

    /// The search space.
    pub fn space(&self) -> &SearchSpace {
        &self.space
    }

    /// Worker threads used by [`Study::run`] (does not change the trials, only the speed).
    pub fn set_jobs(&mut self, jobs: usize) {
        self.jobs = jobs.max(1);
    }

    /// The store.
    pub fn store(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// All trials, by number.
    pub fn trials(&mut self) -> Result<Vec<TrialRecord>, SearchError> {
        let name = self.config.name.clone();
        self.store.trials(&name)
    }

    /// Feasible (latency, quality) points, one per arch hash: (trial index, point).
    fn feasible_points(trials: &[TrialRecord]) -> Vec<(usize, [f64; 2])> {
        let mut seen = HashSet::new();
        trials
            .iter()
            .enumerate()
            .filter(|(_, t)| t.status == TrialStatus::Done && t.duplicate_of.is_none())
            .filter(|(_, t)| seen.insert(t.hash.clone()))
            .filter_map(|(i, t)| Some((i, [t.latency_ms?, t.quality?])))
            .collect()
    }

    /// Hypervolume of the feasible front of `trials` for a reference point.
    pub fn hypervolume_of(trials: &[TrialRecord], reference: [f64; 2]) -> f64 {
        let pts: Vec<[f64; 2]> = Self::feasible_points(trials)
            .into_iter()
            .map(|p| p.1)
            .collect();
        hypervolume_2d(&pts, reference)
    }

    /// The Pareto front (or, with no feasible trial, the least-violating trials), its knee and
    /// hypervolume.
    pub fn results(&mut self) -> Result<StudyResults, SearchError> {
        let trials = self.trials()?;
        Ok(Self::results_of(&self.config, &trials))
    }

    /// [`Study::results`] of a list of trials (numbered `0..`) under a configuration.
    pub fn results_of(config: &StudyConfig, trials: &[TrialRecord]) -> StudyResults {
        let mut counts = BTreeMap::new();
        for t in trials {
            *counts.entry(t.status.as_str().to_string()).or_insert(0) += 1;
        }
        let reference = [config.latency.budget_ms, quality_reference(config, trials)];
        let pts = Self::feasible_points(trials);
        if pts.is_empty() {
            let mut seen = HashSet::new();
            let mut least: Vec<TrialRecord> = trials
                .iter()
                .filter(|t| t.status == TrialStatus::Infeasible)
                .filter(|t| seen.insert(t.hash.clone()))
                .cloned()
                .collect();
            least.sort_by(|a, b| {
                a.violation
                    .unwrap_or(f64::INFINITY)
                    .total_cmp(&b.violation.unwrap_or(f64::INFINITY))
                    .then(a.number.cmp(&b.number))
            });
            least.truncate(5);
            return StudyResults {
                feasible: false,
                front: least,
                knee: None,
                hypervolume: 0.0,
                reference,
                counts,
            };
        }
        let xy: Vec<[f64; 2]> = pts.iter().map(|p| p.1).collect();
        let mut front: Vec<TrialRecord> = pareto_front_2d(&xy)
            .into_iter()
            .map(|i| trials[pts[i].0].clone())
            .collect();
        front.sort_by(|a, b| {
            a.latency_ms
                .unwrap_or(0.0)
                .total_cmp(&b.latency_ms.unwrap_or(0.0))
                .then(a.number.cmp(&b.number))
        });
        let knee = knee_point(&xy).map(|i| trials[pts[i].0].number);
        StudyResults {
            feasible: true,
            front,
            knee,
            hypervolume: hypervolume_2d(&xy, reference),
            reference,
            counts,
        }
    }

    /// Name of the companion study holding the reference archs.
    fn references_study(&self) -> String {
        format!("{}{REFERENCES_SUFFIX}", self.config.name)
    }

    /// The reference archs' records (see [`StudyConfig::references`]), numbered in the
    /// configured order; empty before [`Study::run_references`] first ran.
    pub fn references(&mut self) -> Result<Vec<TrialRecord>, SearchError> {
        let name = self.references_study();
        if self.store.study(&name)?.is_none() {
            return Ok(Vec::new());
        }
        self.store.trials(&name)
    }

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
        let now = now_ms();
        for &i in &todo {
            self.store.mark_running(&name, records[i].number, now)?;
            records[i].status = TrialStatus::Running;
            records[i].attempts += 1;
            records[i].started_ms = Some(now);
        }
        let cfg = &self.config;
        let next = Mutex::new(todo.clone().into_iter());
        let (tx, rx) = mpsc::channel::<(usize, Outcome)>();
        let store = &mut self.store;
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
                apply_outcome(&mut t, &out);
                store.finish_trial(&t)?;
                done(&t);
            }
            Ok(())
        })?;
        Ok(todo.len())
    }

    /// Runs the study until its trial budget is final; resumes an interrupted run. The
    /// reference archs are evaluated first ([`Study::run_references`]). `progress` is called
    /// after every trial that becomes final.
    pub fn run(
        &mut self,
        ev: Evaluators<'_>,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<RunSummary, SearchError> {
        self.run_references(ev, &mut |_| {})?;
        let name = self.config.name.clone();
        let location = self.store.location();
        let mut summary = RunSummary {
            requeued: self.store.requeue_running(&name)?,
            ..Default::default()
        };
        let mut trials = self.store.trials(&name)?;
        for (i, t) in trials.iter().enumerate() {
            if t.number != i as u64 {
                return Err(SearchError::CorruptTrial {
                    location: location.clone(),
                    study: name.clone(),
                    number: i as u64,
                    message: "trial numbers are not contiguous".into(),
                });
            }
        }
        let mut known: HashMap<String, u64> = HashMap::new();
        for t in &trials {
            known.entry(t.hash.clone()).or_insert(t.number);
        }
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
        let mut report = |trials: &[TrialRecord], idx: usize, summary: &RunSummary| {
            progress(&Progress::of(&cfg, trials, idx, start, summary.finished));
        };

        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Mutex::new(job_rx);
        std::thread::scope(|scope| -> Result<(), SearchError> {
            let (res_tx, res_rx) = mpsc::channel::<(u64, Outcome)>();
            for _ in 0..jobs {
                let res_tx = res_tx.clone();
                let job_rx = &job_rx;
                let cfg = &cfg;
                scope.spawn(move || loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
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
            let mut in_flight: HashSet<u64> = HashSet::new();
            let result = (|| -> Result<(), SearchError> {
                loop {
                    // Resolve duplicates and propose until nothing changes.
                    let mut changed = true;
                    while changed {
                        changed = false;
                        for i in 0..trials.len() {
                            let t = &trials[i];
                            let Some(m) = t.duplicate_of else { continue };
                            if t.status != TrialStatus::Pending
                                || !trials[m as usize].status.is_final()
                            {
                                continue;
                            }
                            let src = trials[m as usize].clone();
                            let t = &mut trials[i];
                            t.reuse_result_of(&src);
                            store.finish_trial(t)?;
                            summary.finished += 1;
                            summary.reused += 1;
                            report(&trials, i, &summary);
                            changed = true;
                        }
                        while trials.len() < budget {
                            let n = trials.len() as u64;
                            let vis = controller.visible_before(n) as usize;
                            if !trials[..vis].iter().all(|t| t.status.is_final()) {
                                break;
                            }
                            propose_next(
                                store.as_mut(),
                                &cfg,
                                &mut controller,
                                &mut trials,
                                &mut known,
                            )?;
                            changed = true;
                        }
                    }
                    // Dispatch pending evaluations to free workers, lowest number first.
                    for t in trials.iter_mut() {
                        if in_flight.len() >= jobs {
                            break;
                        }
                        if t.status != TrialStatus::Pending || t.duplicate_of.is_some() {
                            continue;
                        }
                        let now = now_ms();
                        store.mark_running(&name, t.number, now)?;
                        t.status = TrialStatus::Running;
                        t.attempts += 1;
                        t.started_ms = Some(now);
                        in_flight.insert(t.number);
                        job_tx
                            .send(Job {
                                number: t.number,
                                arch: t.arch.clone(),
                                eval_seed: t.eval_seed,
                            })
                            .map_err(|_| {
                                SearchError::Controller("worker threads stopped".into())
                            })?;
                    }
                    if in_flight.is_empty() {
                        if trials.len() >= budget && trials.iter().all(|t| t.status.is_final()) {
                            return Ok(());
                        }
                        return Err(SearchError::Controller(format!(
                            "study `{name}` cannot make progress ({} of {budget} trials proposed)",
                            trials.len()
                        )));
                    }
                    let (number, out) = res_rx
                        .recv()
                        .map_err(|_| SearchError::Controller("worker threads stopped".into()))?;
                    in_flight.remove(&number);
                    let idx = number as usize;
                    let t = &mut trials[idx];
                    apply_outcome(t, &out);
                    store.finish_trial(t)?;
                    summary.finished += 1;
                    summary.evaluated += 1;
                    if out.quality_evaluated {
                        summary.quality_evaluations += 1;
                    }
                    match out.status {
                        TrialStatus::Failed => summary.failed += 1,
                        TrialStatus::Infeasible => summary.infeasible += 1,
                        _ => {}
                    }
                    report(&trials, idx, &summary);
                }
            })();
            drop(job_tx);
            result
        })?;
        Ok(summary)
    }
}
