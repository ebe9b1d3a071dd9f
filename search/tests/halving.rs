//! Successive halving (ASHA): a study with 3 rungs runs in one process, resumes after SIGKILL
//! at random moments, and runs with two external workers on PostgreSQL; every promotion is a
//! stored rung row, the counts follow the reduction factor, no (trial, rung) is evaluated
//! twice, and the front takes each trial's highest rung. The evaluator is the synthetic TEST
//! FIXTURE (not a quality metric), whose rungs are less noisy scores of the same candidate.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Pg;
use unas_evaluator::latency::profile::DeviceProfile;
use unas_search::fixture::{tiny_study, CountingQuality, SyntheticQuality};
use unas_search::store::RungRecord;
use unas_search::{
    open_store, ControllerConfig, Evaluators, ExternalOptions, HalvingConfig, QualityError,
    QualityEvaluator, QualityResult, SearchError, Study, StudyConfig, TrialRecord, TrialStatus,
    Worker, WorkerOptions,
};
use unas_space::rng::Rng;
use unas_space::UNetArch;

fn config(name: &str, trials: usize, jobs: usize) -> StudyConfig {
    let mut cfg = tiny_study(
        name,
        ControllerConfig::Aging {
            population: 6,
            sample: 3,
        },
        trials,
        9,
    );
    cfg.jobs = jobs;
    cfg.halving = Some(HalvingConfig {
        rungs: 3,
        reduction: 3,
    });
    cfg
}

/// Finished (score, trial) per rung, best first: rung 0 from the trials, the others from the
/// rung rows.
fn finished(k: u32, trials: &[TrialRecord], rungs: &[RungRecord]) -> Vec<(f64, u64)> {
    let mut s: Vec<(f64, u64)> = if k == 0 {
        trials
            .iter()
            .filter(|t| t.status == TrialStatus::Done && t.duplicate_of.is_none())
            .map(|t| (t.quality.unwrap(), t.number))
            .collect()
    } else {
        rungs
            .iter()
            .filter(|r| r.rung == k && r.status == TrialStatus::Done)
            .map(|r| (r.score.unwrap(), r.number))
            .collect()
    };
    s.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    s
}

/// What a settled ASHA leaves: all rows final; every trial among a rung's best
/// `floor(n / 3)` has a row at the next rung (nothing promotable is left; ASHA may also have
/// promoted trials that were among the best of fewer scores at the time); every row above
/// rung 0 belongs to a trial that finished the rung below.
fn check_settled(trials: &[TrialRecord], rungs: &[RungRecord]) {
    assert!(trials.iter().all(|t| t.status.is_final()));
    assert!(rungs.iter().all(|r| r.status.is_final()), "{rungs:?}");
    for k in 0..2u32 {
        let below = finished(k, trials, rungs);
        let next: Vec<u64> = rungs
            .iter()
            .filter(|r| r.rung == k + 1)
            .map(|r| r.number)
            .collect();
        for (_, n) in &below[..below.len() / 3] {
            assert!(
                next.contains(n),
                "trial {n} is among rung {k}'s best but not promoted"
            );
        }
        for n in &next {
            assert!(
                below.iter().any(|(_, m)| m == n),
                "trial {n} at rung {} without rung {k}",
                k + 1
            );
        }
        assert!(next.len() >= below.len() / 3);
    }
    assert!(
        !finished(2, trials, rungs).is_empty(),
        "no trial reached the top rung"
    );
}

#[test]
fn a_halving_study_promotes_by_the_reduction_factor_and_evaluates_each_rung_once() {
    let profile = DeviceProfile::load("a10g").unwrap();
    let q = CountingQuality::default();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("asha", 30, 2);
    cfg.references = vec!["tiny".into()];
    let mut study = Study::create(dir.path(), cfg).unwrap();
    let ev = Evaluators {
        latency: &profile,
        quality: &q,
    };
    let summary = study.run(ev, &mut |_| {}).unwrap();
    let (trials, rungs) = (study.trials().unwrap(), study.rungs().unwrap());
    check_settled(&trials, &rungs);
    assert_eq!(summary.rung_evaluations, rungs.len());
    // Each (arch, rung) scored once; every rung row's arch scored once at that rung.
    let seen = q.seen.lock().unwrap().clone();
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    // (The reference `tiny` is scored at rungs 0, 1 and 2 too: counted above, once each.)
    for r in &rungs {
        let key = format!("{}@{}", trials[r.number as usize].hash, r.rung);
        assert_eq!(seen.get(&key), Some(&1), "{key}");
    }
    // The front takes each trial's highest rung.
    let results = study.results().unwrap();
    for t in &results.front {
        let top = rungs
            .iter()
            .filter(|r| r.number == t.number && r.status == TrialStatus::Done)
            .max_by_key(|r| r.rung);
        let want = top.map_or(trials[t.number as usize].quality, |r| r.score);
        assert_eq!(t.quality, want, "trial {}", t.number);
    }
    // The reference is scored at every rung, to compare with the trials at theirs.
    let reference_rungs = study.reference_rungs().unwrap();
    let got: Vec<(u32, TrialStatus)> = reference_rungs.iter().map(|r| (r.rung, r.status)).collect();
    assert_eq!(got, vec![(1, TrialStatus::Done), (2, TrialStatus::Done)]);
    // A rerun finds nothing to do.
    let again = study.run(ev, &mut |_| {}).unwrap();
    assert_eq!((again.evaluated, again.rung_evaluations), (0, 0));
}

/// An evaluator with one fidelity.
struct OneRung;

impl QualityEvaluator for OneRung {
    fn describe(&self) -> String {
        "one-rung evaluator".into()
    }
    fn evaluate(&self, _: &UNetArch, _: u64) -> Result<QualityResult, QualityError> {
        Err(QualityError::Failed("never called".into()))
    }
}

#[test]
fn an_evaluator_without_the_rungs_is_refused_before_anything_runs() {
    let profile = DeviceProfile::load("a10g").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut study = Study::create(dir.path(), config("one", 6, 1)).unwrap();
    let ev = Evaluators {
        latency: &profile,
        quality: &OneRung,
    };
    let e = study.run(ev, &mut |_| {}).unwrap_err();
    assert!(
        matches!(&e, SearchError::InvalidConfig { field, .. } if field == "halving.rungs"),
        "{e}"
    );
    assert!(e.to_string().contains("offers 1"), "{e}");
    assert!(study.trials().unwrap().is_empty());
}

fn run_local(dir: &Path, log: Option<PathBuf>) -> (Vec<TrialRecord>, Vec<RungRecord>) {
    let profile = DeviceProfile::load("a10g").unwrap();
    let q = SyntheticQuality {
        delay_ms: 40,
        log,
        ..Default::default()
    };
    let mut study = Study::create(dir, config("asha-kill9", 24, 1)).unwrap();
    let ev = Evaluators {
        latency: &profile,
        quality: &q,
    };
    study.run(ev, &mut |_| {}).unwrap();
    (study.trials().unwrap(), study.rungs().unwrap())
}

/// Child mode of the kill -9 test: runs (or resumes) the study in `UNAS_ASHA_DIR`.
#[test]
fn child_halving_run() {
    let Ok(dir) = std::env::var("UNAS_ASHA_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    run_local(&dir, Some(dir.join("evaluations.log")));
}

/// Evaluation starts per key (`hash` for rung 0, `hash@rung` above) with their times.
fn starts(log: &Path) -> HashMap<String, Vec<i64>> {
    let mut out: HashMap<String, Vec<i64>> = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let mut parts = line.split(' ');
        let key = parts.next().unwrap().to_string();
        let ms: i64 = parts.next().unwrap().parse().unwrap();
        out.entry(key).or_default().push(ms);
    }
    out
}

#[test]
fn a_halving_study_resumes_after_kill_9_to_the_uninterrupted_result() {
    if std::env::var("UNAS_ASHA_DIR").is_ok() {
        return;
    }
    let reference_dir = tempfile::tempdir().unwrap();
    let (want_trials, want_rungs) = run_local(reference_dir.path(), None);
    check_settled(&want_trials, &want_rungs);

    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("halving kill9: kill-time seed {seed}");
    let mut rng = Rng::seed(seed);
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["child_halving_run", "--exact", "--test-threads=1"])
            .env("UNAS_ASHA_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let (mut kills, mut completed) = (0, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    while kills < 8 && Instant::now() < deadline {
        let mut child = spawn();
        std::thread::sleep(Duration::from_millis(40 + rng.below(200) as u64));
        if child.try_wait().unwrap().is_some() {
            completed = true;
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    // About 30 evaluations of 40 ms each and at most 240 ms per child: several kills.
    assert!(kills >= 3, "only {kills} kills (completed: {completed})");
    assert!(spawn().wait().unwrap().success());
    let (trials, rungs) = run_local(dir.path(), None);
    // One job: the same trials and rungs as the uninterrupted run.
    let strip = |t: &TrialRecord| {
        (
            t.number,
            t.hash.clone(),
            t.status,
            t.quality.map(f64::to_bits),
        )
    };
    assert_eq!(
        trials.iter().map(strip).collect::<Vec<_>>(),
        want_trials.iter().map(strip).collect::<Vec<_>>()
    );
    let key = |r: &RungRecord| (r.number, r.rung, r.status, r.score.map(f64::to_bits));
    assert_eq!(
        rungs.iter().map(key).collect::<Vec<_>>(),
        want_rungs.iter().map(key).collect::<Vec<_>>()
    );
    // No rung was started again once finished (a kill mid-evaluation may restart it).
    let starts = starts(&dir.path().join("evaluations.log"));
    for r in &rungs {
        let key = format!("{}@{}", trials[r.number as usize].hash, r.rung);
        let finished = r.finished_ms.unwrap();
        let after: Vec<&i64> = starts[&key].iter().filter(|&&ms| ms > finished).collect();
        assert!(
            after.is_empty(),
            "{key} started again after finishing: {after:?}"
        );
    }
}

/// Child mode of the distributed test: one worker on the study at `UNAS_ASHA_URL`.
#[test]
fn child_halving_worker() {
    let Ok(url) = std::env::var("UNAS_ASHA_URL") else {
        return;
    };
    let log = std::env::var("UNAS_ASHA_LOG").unwrap();
    let q = SyntheticQuality {
        delay_ms: 20,
        log: Some(log.into()),
        ..Default::default()
    };
    let mut worker = Worker::open(&url, "asha-dist").unwrap();
    let latency = worker.config().latency.build().unwrap();
    let opts = WorkerOptions {
        heartbeat: Duration::from_millis(100),
        lease: opts(),
        ..Default::default()
    };
    let ev = Evaluators {
        latency: latency.as_ref(),
        quality: &q,
    };
    worker.run(&opts, ev, &mut |_| {}).unwrap();
}

fn opts() -> ExternalOptions {
    ExternalOptions {
        poll: Duration::from_millis(30),
        grace: Duration::from_millis(1500),
        max_attempts: 1000,
    }
}

#[test]
fn a_halving_study_runs_with_two_postgresql_workers() {
    if std::env::var("UNAS_ASHA_URL").is_ok() {
        return;
    }
    let pg = Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("evaluations.log");
    let mut study =
        Study::create_in(open_store(&pg.url).unwrap(), config("asha-dist", 24, 2)).unwrap();
    let mut workers: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["child_halving_worker", "--exact", "--test-threads=1"])
                .env("UNAS_ASHA_URL", &pg.url)
                .env("UNAS_ASHA_LOG", &log)
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    let summary = study.run_external(&opts(), &mut |_| {}).unwrap();
    for w in &mut workers {
        assert!(w.wait().unwrap().success(), "a worker failed");
    }
    let (trials, rungs) = (study.trials().unwrap(), study.rungs().unwrap());
    check_settled(&trials, &rungs);
    assert_eq!(summary.rung_evaluations, rungs.len());
    // Every (arch, rung) started once: nothing lost, nothing done twice.
    let starts = starts(&log);
    assert!(starts.values().all(|s| s.len() == 1), "{starts:?}");
    for r in &rungs {
        let key = format!("{}@{}", trials[r.number as usize].hash, r.rung);
        assert!(starts.contains_key(&key), "{key}");
        assert!(r.worker.is_some(), "rung {r:?} was evaluated by a worker");
    }
}
