//! Reference archs of a study (`references`): evaluated like trials but outside the trial
//! budget, never parents, resumable. Quality comes from the synthetic TEST FIXTURE (not a
//! quality metric); latency from the A10G roofline profile.

use unas_evaluator::latency::profile::DeviceProfile;
use unas_evaluator::latency::LatencyModel;
use unas_search::engine::REFERENCES_SUFFIX;
use unas_search::fixture::{tiny_study, CountingQuality};
use unas_search::{
    ControllerConfig, Evaluators, SqliteStore, Study, StudyConfig, StudyRecord, TrialRecord,
    TrialStatus,
};

fn config(references: &[&str], budget_ms: f64) -> StudyConfig {
    let mut cfg = tiny_study(
        "refs",
        ControllerConfig::Aging {
            population: 6,
            sample: 3,
        },
        16,
        5,
    );
    cfg.latency.budget_ms = budget_ms;
    cfg.jobs = 2;
    cfg.references = references.iter().map(|s| s.to_string()).collect();
    cfg
}

fn latency(arch: &str, profile: &DeviceProfile) -> f64 {
    let c = config(&[], 1.0);
    profile
        .predict(&unas_space::load_arch(arch).unwrap(), &c.latency.setting())
        .unwrap()
        .total_ms
}

fn key(t: &TrialRecord) -> (String, TrialStatus, Option<u64>, String) {
    (
        t.hash.clone(),
        t.status,
        t.quality.map(f64::to_bits),
        t.origin.clone(),
    )
}

#[test]
fn references_are_scored_apart_from_the_trials_and_resume() {
    let profile = DeviceProfile::load("a10g").unwrap();
    // Between the two references: tiny-nas fits, tiny (SD1.5-like) does not.
    let (nas, sd) = (latency("tiny-nas", &profile), latency("tiny", &profile));
    assert!(nas < sd, "{nas} {sd}");
    let budget = (nas + sd) / 2.0;
    let q = CountingQuality::default();
    let ev = Evaluators {
        latency: &profile,
        quality: &q,
    };

    let dir = tempfile::tempdir().unwrap();
    let mut with = Study::create(dir.path(), config(&["tiny", "tiny-nas"], budget)).unwrap();
    with.run(ev, &mut |_| {}).unwrap();
    let trials = with.trials().unwrap();
    let refs = with.references().unwrap();
    assert_eq!(trials.len(), 16, "references are not in the trial budget");
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].arch.hash_id(), refs[0].hash);
    assert!(refs[0].origin.contains("\"reference\"") && refs[0].origin.contains("tiny"));
    assert!(refs
        .iter()
        .all(|r| r.study == format!("refs{REFERENCES_SUFFIX}")));
    // tiny-nas is feasible; tiny is over the budget yet scored (so reports can place it).
    assert_eq!(refs[1].status, TrialStatus::Done);
    assert_eq!(refs[0].status, TrialStatus::Infeasible);
    assert!(refs[0].quality.is_some(), "{:?}", refs[0]);
    assert!(refs[0].error.as_deref().unwrap().contains("reference"));
    assert!(refs[0].violation.unwrap() > 0.0);

    // The trials are exactly those of the same study without references: references never
    // influence the controller.
    let mut without = Study::create_in(
        Box::new(SqliteStore::in_memory().unwrap()),
        config(&[], budget),
    )
    .unwrap();
    without.run(ev, &mut |_| {}).unwrap();
    let a: Vec<_> = trials.iter().map(key).collect();
    let b: Vec<_> = without.trials().unwrap().iter().map(key).collect();
    assert_eq!(a, b);
    assert!(trials.iter().all(|t| !t.origin.contains("reference")));

    // Reopening the run directory finds the study (the companion study is not a second one),
    // and a finished study evaluates nothing again.
    drop(with);
    let before = q.seen.lock().unwrap().values().sum::<usize>();
    let mut again = Study::open(dir.path()).unwrap();
    assert_eq!(again.config().name, "refs");
    let s = again.run(ev, &mut |_| {}).unwrap();
    assert_eq!(s.finished, 0);
    assert_eq!(q.seen.lock().unwrap().values().sum::<usize>(), before);
    assert_eq!(again.references().unwrap(), refs);
}

#[test]
fn an_interrupted_reference_is_rerun_once() {
    let profile = DeviceProfile::load("a10g").unwrap();
    let q = CountingQuality::default();
    let ev = Evaluators {
        latency: &profile,
        quality: &q,
    };
    let cfg = config(&["tiny-nas"], 1e3);
    let mut study =
        Study::create_in(Box::new(SqliteStore::in_memory().unwrap()), cfg.clone()).unwrap();
    // As if a run was killed while evaluating the reference: a `running` record.
    let arch = unas_space::load_arch("tiny-nas").unwrap();
    let name = format!("refs{REFERENCES_SUFFIX}");
    let store = study.store();
    store
        .create_study(&StudyRecord {
            name: name.clone(),
            settings: "{}".into(),
            seed: 5,
            created_ms: 0,
        })
        .unwrap();
    store
        .insert_trial(&TrialRecord {
            study: name.clone(),
            number: 0,
            hash: arch.hash_id(),
            eval_seed: 1,
            arch: arch.clone(),
            origin: "{\"kind\":\"reference\",\"name\":\"tiny-nas\"}".into(),
            status: TrialStatus::Pending,
            duplicate_of: None,
            latency_ms: None,
            quality: None,
            params: None,
            macs: None,
            violation: None,
            objectives: None,
            block_latency: None,
            latency_s: None,
            quality_s: None,
            attempts: 0,
            error: None,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
        })
        .unwrap();
    store.mark_running(&name, 0, 1).unwrap();
    let n = study.run_references(ev, &mut |_| {}).unwrap();
    assert_eq!(n, 1);
    let refs = study.references().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].status, TrialStatus::Done);
    assert_eq!(refs[0].attempts, 2);
    assert_eq!(q.seen.lock().unwrap()[&arch.hash_id()], 1);
    assert_eq!(study.run_references(ev, &mut |_| {}).unwrap(), 0);
}
