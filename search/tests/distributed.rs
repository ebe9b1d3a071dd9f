//! Distributed studies on a real PostgreSQL server (see `support`): one controller
//! ([`Study::run_external`]) and four worker processes ([`Worker::run`], the code behind
//! `unas worker`) finish a study; the trials equal an in-process SQLite run with the same seed;
//! every trial is evaluated exactly once. The fault test SIGKILLs workers at random moments
//! (at least 10 kills) and restarts them: the study completes with the same trials, none lost,
//! none left running, none finished twice.
//!
//! Workers are this test binary re-run with `UNAS_DIST_URL` set (test `child_worker`). The
//! quality evaluator is the synthetic TEST FIXTURE (not a quality metric), deterministic, with
//! a sleep so that kills land mid-evaluation.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::Pg;
use unas_evaluator::latency::profile::DeviceProfile;
use unas_search::fixture::{tiny_study, SyntheticQuality};
use unas_search::runner::worker::WorkerEvent;
use unas_search::{
    open_store, ControllerConfig, Evaluators, ExternalOptions, SqliteStore, Study, StudyConfig,
    TrialRecord, TrialStatus, Worker, WorkerOptions,
};
use unas_space::rng::Rng;

const STUDY: &str = "dist";

fn config(trials: usize) -> StudyConfig {
    let mut cfg = tiny_study(
        STUDY,
        ControllerConfig::Aging {
            population: 8,
            sample: 3,
        },
        trials,
        5,
    );
    // Four workers: four trials open at once.
    cfg.window = Some(4);
    cfg
}

/// Child mode: one worker process on the study at `UNAS_DIST_URL`.
#[test]
fn child_worker() {
    let Ok(url) = std::env::var("UNAS_DIST_URL") else {
        return;
    };
    let delay_ms: u64 = std::env::var("UNAS_DIST_DELAY").unwrap().parse().unwrap();
    let log = std::env::var("UNAS_DIST_LOG").unwrap();
    let finish_log = format!("{log}.finished");
    let q = SyntheticQuality {
        delay_ms,
        log: Some(log.into()),
        ..Default::default()
    };
    let mut worker = Worker::open(&url, STUDY).unwrap();
    let latency = worker.config().latency.build().unwrap();
    let opts = WorkerOptions {
        heartbeat: Duration::from_millis(100),
        lease: ExternalOptions {
            poll: Duration::from_millis(50),
            grace: Duration::from_millis(1500),
            max_attempts: 1000,
        },
        ..Default::default()
    };
    let id = opts.id.clone();
    worker
        .run(
            &opts,
            Evaluators {
                latency: latency.as_ref(),
                quality: &q,
            },
            &mut |e| {
                if let WorkerEvent::Finished(t) = e {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&finish_log)
                        .unwrap();
                    f.write_all(format!("{} {id}\n", t.number).as_bytes())
                        .unwrap();
                }
            },
        )
        .unwrap();
}

fn spawn_worker(url: &str, delay_ms: u64, log: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child_worker", "--exact", "--test-threads=1", "--nocapture"])
        .env("UNAS_DIST_URL", url)
        .env("UNAS_DIST_DELAY", delay_ms.to_string())
        .env("UNAS_DIST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
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

/// The same study in one process on SQLite.
fn reference(trials: usize) -> Vec<TrialRecord> {
    let profile = DeviceProfile::load("a10g").unwrap();
    let q = SyntheticQuality::default();
    let mut study =
        Study::create_in(Box::new(SqliteStore::in_memory().unwrap()), config(trials)).unwrap();
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

fn controller_opts() -> ExternalOptions {
    ExternalOptions {
        poll: Duration::from_millis(50),
        grace: Duration::from_millis(1500),
        max_attempts: 1000,
    }
}

/// Evaluation starts per arch hash from the fixture's log.
fn evaluations(log: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let hash = line.split(' ').next().unwrap().to_string();
        *out.entry(hash).or_insert(0) += 1;
    }
    out
}

/// Trial number -> times a worker wrote its result (from the workers' finish logs).
fn finishes(log: &Path) -> HashMap<u64, usize> {
    let mut out = HashMap::new();
    let path = format!("{}.finished", log.display());
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let n: u64 = line.split(' ').next().unwrap().parse().unwrap();
        *out.entry(n).or_insert(0) += 1;
    }
    out
}

fn check_against_reference(trials: &[TrialRecord], want: &[TrialRecord]) {
    assert!(
        trials
            .iter()
            .all(|t| t.status.is_final() && t.status != TrialStatus::Running),
        "a trial is not final"
    );
    let got: Vec<Key> = trials.iter().map(key).collect();
    let want: Vec<Key> = want.iter().map(key).collect();
    assert_eq!(
        got, want,
        "distributed study differs from the single-process run"
    );
}

#[test]
fn one_controller_four_workers_equal_a_single_process_run() {
    if std::env::var("UNAS_DIST_URL").is_ok() {
        return;
    }
    const TRIALS: usize = 48;
    let want = reference(TRIALS);
    let pg = Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("evaluations.log");
    let mut study = Study::create_in(open_store(&pg.url).unwrap(), config(TRIALS)).unwrap();
    let mut workers: Vec<Child> = (0..4).map(|_| spawn_worker(&pg.url, 30, &log)).collect();
    let mut calls = 0;
    let summary = study
        .run_external(&controller_opts(), &mut |_| calls += 1)
        .unwrap();
    for w in &mut workers {
        assert!(w.wait().unwrap().success(), "a worker failed");
    }
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), TRIALS);
    check_against_reference(&trials, &want);
    assert_eq!(summary.finished, TRIALS);
    assert_eq!(calls, TRIALS, "one progress call per trial");
    assert_eq!(summary.requeued, 0);

    // Every non-duplicate trial was claimed once and finished once; every quality evaluation
    // happened once (infeasible trials are never evaluated for quality, duplicates never).
    let evals = evaluations(&log);
    let fin = finishes(&log);
    let mut evaluated_for_quality = 0;
    for t in trials.iter().filter(|t| t.duplicate_of.is_none()) {
        assert_eq!(
            t.attempts, 1,
            "trial {} claimed {} times",
            t.number, t.attempts
        );
        assert_eq!(fin.get(&t.number), Some(&1), "trial {} finishes", t.number);
        let quality_evaluated = t.status == TrialStatus::Done;
        if quality_evaluated {
            evaluated_for_quality += 1;
        }
        assert_eq!(
            evals.get(&t.hash).copied().unwrap_or(0),
            usize::from(quality_evaluated),
            "trial {}",
            t.number
        );
    }
    for t in trials.iter().filter(|t| t.duplicate_of.is_some()) {
        assert_eq!(t.attempts, 0, "duplicate {} was claimed", t.number);
        assert!(!fin.contains_key(&t.number));
    }
    assert_eq!(evals.values().sum::<usize>(), evaluated_for_quality);
    assert!(evaluated_for_quality >= 10, "{evaluated_for_quality}");
    // The work was shared.
    let workers_used: std::collections::HashSet<String> = study
        .store()
        .leases(STUDY)
        .unwrap()
        .into_iter()
        .filter_map(|l| l.worker)
        .collect();
    assert!(workers_used.len() >= 2, "{workers_used:?}");
}

#[test]
fn workers_killed_at_random_moments_lose_nothing() {
    if std::env::var("UNAS_DIST_URL").is_ok() {
        return;
    }
    const TRIALS: usize = 48;
    const DELAY_MS: u64 = 400;
    let want = reference(TRIALS);
    let pg = Pg::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("evaluations.log");
    let study = Study::create_in(open_store(&pg.url).unwrap(), config(TRIALS)).unwrap();
    let controller = std::thread::spawn(move || {
        let mut study = study;
        let summary = study.run_external(&controller_opts(), &mut |_| {}).unwrap();
        (summary, study.trials().unwrap())
    });

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill seed {seed}");
    let mut rng = Rng::seed(seed);
    let mut workers: Vec<Child> = (0..4)
        .map(|_| spawn_worker(&pg.url, DELAY_MS, &log))
        .collect();
    let mut watch = open_store(&pg.url).unwrap();
    let (mut kills, mut busy_kills) = (0, 0);
    // At least 12 kills, and more (up to 24) until 4 of them hit a worker holding a trial.
    while (kills < 12 || busy_kills < 4) && kills < 24 && !controller.is_finished() {
        std::thread::sleep(Duration::from_millis(100 + rng.below(300) as u64));
        // Two kills in three target a worker holding a running trial if there is one (its id
        // is host:pid:nonce), the others a random worker (maybe idle, mid-claim or mid-write).
        let running: Vec<u32> = if rng.below(3) != 0 {
            let trials = watch.trials(STUDY).unwrap();
            let leases = watch.leases(STUDY).unwrap();
            leases
                .iter()
                .filter(|l| trials[l.number as usize].status == TrialStatus::Running)
                .filter_map(|l| l.worker.as_deref()?.split(':').nth(1)?.parse().ok())
                .collect()
        } else {
            Vec::new()
        };
        let busy: Vec<usize> = (0..workers.len())
            .filter(|&i| running.contains(&workers[i].id()))
            .collect();
        let i = if busy.is_empty() {
            rng.below(workers.len())
        } else {
            busy[rng.below(busy.len())]
        };
        if workers[i].try_wait().unwrap().is_none() {
            workers[i].kill().unwrap(); // SIGKILL
            kills += 1;
            busy_kills += usize::from(!busy.is_empty());
        }
        workers[i].wait().unwrap();
        workers[i] = spawn_worker(&pg.url, DELAY_MS, &log);
    }
    let (summary, trials) = controller.join().unwrap();
    for w in &mut workers {
        assert!(w.wait().unwrap().success(), "a worker failed");
    }
    let attempts: u32 = trials.iter().map(|t| t.attempts).sum();
    let claimable = trials.iter().filter(|t| t.duplicate_of.is_none()).count() as u32;
    eprintln!(
        "{kills} kills ({busy_kills} aimed at a worker holding a trial); {} interrupted claims \
         re-run; the controller requeued {}",
        attempts - claimable.min(attempts),
        summary.requeued
    );
    assert!(kills >= 10, "only {kills} kills before the study finished");

    // Same trials as the single-process run: nothing lost, nothing stuck in running.
    check_against_reference(&trials, &want);
    let mut store = open_store(&pg.url).unwrap();
    assert!(store
        .trials(STUDY)
        .unwrap()
        .iter()
        .all(|t| t.status.is_final()));
    // No trial finished twice: at most one accepted result per trial (a kill right after
    // the write may drop the log line, never add one).
    for (n, count) in finishes(&log) {
        assert_eq!(count, 1, "trial {n} finished {count} times");
    }
    // Kills interrupted claimed trials, which were then claimed again (each exactly once more
    // per interruption: at most one per kill).
    assert!(
        attempts > claimable,
        "no kill hit a claimed trial ({kills} kills)"
    );
    assert!(
        attempts - claimable <= kills as u32,
        "{attempts} attempts, {kills} kills"
    );
}
