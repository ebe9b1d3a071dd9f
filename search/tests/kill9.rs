//! Kill -9 test: a study run in a child process is killed with SIGKILL at random moments and
//! resumed, several times; it must end with the same finished trials as an uninterrupted run
//! with the same seed, and no finished trial (nor any duplicate) may be evaluated again.
//!
//! The child is this test binary itself, re-run with `UNAS_KILL9_DIR` set (test `child`).
//! The evaluator is the synthetic TEST FIXTURE (not a quality metric) with a sleep, so kills
//! land mid-evaluation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use unas_evaluator::latency::profile::DeviceProfile;
use unas_search::fixture::{tiny_study, SyntheticQuality};
use unas_search::{ControllerConfig, Evaluators, Study, StudyConfig, TrialRecord};
use unas_space::rng::Rng;

const DELAY_MS: u64 = 40;

fn config(controller: ControllerConfig) -> StudyConfig {
    let mut cfg = tiny_study(&format!("kill9-{}", controller.name()), controller, 40, 11);
    cfg.jobs = 2;
    cfg
}

fn controller(kind: &str) -> ControllerConfig {
    match kind {
        "aging" => ControllerConfig::Aging {
            population: 8,
            sample: 3,
        },
        _ => ControllerConfig::Nsga2 { population: 8 },
    }
}

fn run_study(dir: &Path, kind: &str, log: Option<PathBuf>) -> Vec<TrialRecord> {
    let profile = DeviceProfile::load("a10g").unwrap();
    let q = SyntheticQuality {
        delay_ms: DELAY_MS,
        log,
        ..Default::default()
    };
    let mut study = Study::create(dir, config(controller(kind))).unwrap();
    study
        .run(
            Evaluators {
                latency: &profile,
                quality: &q,
            },
            &mut |_| {},
        )
        .unwrap();
    study.trials().unwrap()
}

/// Child mode: runs (or resumes) the study in `UNAS_KILL9_DIR`; a no-op otherwise.
#[test]
fn child() {
    let Ok(dir) = std::env::var("UNAS_KILL9_DIR") else {
        return;
    };
    let kind = std::env::var("UNAS_KILL9_KIND").unwrap();
    let dir = PathBuf::from(dir);
    run_study(&dir, &kind, Some(dir.join("evaluations.log")));
}

fn spawn_child(dir: &Path, kind: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--test-threads=1", "--nocapture"])
        .env("UNAS_KILL9_DIR", dir)
        .env("UNAS_KILL9_KIND", kind)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

type Key = (u64, String, String, Option<u64>, Option<u64>, Option<u64>);

fn key(t: &TrialRecord) -> Key {
    (
        t.number,
        t.hash.clone(),
        t.status.as_str().to_string(),
        t.quality.map(f64::to_bits),
        t.latency_ms.map(f64::to_bits),
        t.duplicate_of,
    )
}

fn kill_and_resume(kind: &str) {
    let reference_dir = tempfile::tempdir().unwrap();
    let reference = run_study(reference_dir.path(), kind, None);
    assert!(reference.iter().all(|t| t.status.is_final()));

    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill9 {kind}: kill-time seed {seed}");
    let mut rng = Rng::seed(seed);
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut completed = false;
    while kills < 8 && Instant::now() < deadline {
        let mut child = spawn_child(dir.path(), kind);
        // Let it run between 30 and 180 ms, then SIGKILL (Child::kill sends SIGKILL).
        std::thread::sleep(Duration::from_millis(30 + rng.below(150) as u64));
        if child.try_wait().unwrap().is_some() {
            completed = true;
            break;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
    }
    assert!(kills >= 3 || completed, "only {kills} kills");
    let status = spawn_child(dir.path(), kind).wait().unwrap();
    assert!(status.success(), "final resume failed: {status}");
    eprintln!("kill9 {kind}: {kills} kills");

    let mut study = Study::open(dir.path()).unwrap();
    let trials = study.trials().unwrap();
    let got: Vec<Key> = trials.iter().map(key).collect();
    let want: Vec<Key> = reference.iter().map(key).collect();
    assert_eq!(
        got, want,
        "resumed study differs from the uninterrupted run"
    );

    // Every evaluation start is logged as `<hash> <ms>`. No finished trial is evaluated again
    // (no start at or after its finish), duplicates never, and in all at most one restart per
    // kill and worker.
    let log = std::fs::read_to_string(dir.path().join("evaluations.log")).unwrap_or_default();
    let first: HashMap<&str, &TrialRecord> = trials
        .iter()
        .filter(|t| t.duplicate_of.is_none())
        .map(|t| (t.hash.as_str(), t))
        .collect();
    let mut starts = 0;
    for line in log.lines() {
        let mut it = line.split(' ');
        let (hash, ms) = (
            it.next().unwrap(),
            it.next().unwrap().parse::<i64>().unwrap(),
        );
        let t = first.get(hash).expect("evaluated a hash no trial has");
        assert!(
            ms < t.finished_ms.unwrap(),
            "trial {} evaluated again after it finished",
            t.number
        );
        starts += 1;
    }
    let trained = trials
        .iter()
        .filter(|t| t.duplicate_of.is_none() && t.quality_s.unwrap_or(0.0) > 0.0)
        .count();
    assert!(
        starts <= trained + kills * 2,
        "{starts} evaluations for {trained} trained trials and {kills} kills"
    );
    let attempts: u32 = trials.iter().map(|t| t.attempts).sum();
    eprintln!(
        "kill9 {kind}: {starts} evaluation starts for {trained} trained trials, {attempts} attempts"
    );
    assert!(attempts as usize >= trials.iter().filter(|t| t.duplicate_of.is_none()).count());
}

#[test]
fn kill9_aging_evolution_resumes_exactly() {
    if std::env::var("UNAS_KILL9_DIR").is_ok() {
        return;
    }
    kill_and_resume("aging");
}

#[test]
fn kill9_nsga2_resumes_exactly() {
    if std::env::var("UNAS_KILL9_DIR").is_ok() {
        return;
    }
    kill_and_resume("nsga2");
}
