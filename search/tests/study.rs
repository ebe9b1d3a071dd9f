//! Study-level behaviour with the synthetic TEST FIXTURE evaluator (not a quality metric) and
//! the A10G roofline latency model.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use unas_evaluator::latency::profile::DeviceProfile;
use unas_search::engine::eval_seed;
use unas_search::fixture::{tiny_study, CountingQuality, SyntheticQuality};
use unas_search::{
    strategy_benchmark, ControllerConfig, Evaluators, QualityEvaluator, SearchError, SqliteStore,
    Study, StudyConfig, TrialRecord, TrialStatus,
};

fn config(name: &str, controller: ControllerConfig, trials: usize) -> StudyConfig {
    tiny_study(name, controller, trials, 7)
}

const AGING: ControllerConfig = ControllerConfig::Aging {
    population: 8,
    sample: 3,
};

fn run(study: &mut Study, q: &(dyn QualityEvaluator + Sync)) -> Vec<TrialRecord> {
    let profile = DeviceProfile::load("a10g").unwrap();
    let ev = Evaluators {
        latency: &profile,
        quality: q,
    };
    let mut calls = 0;
    let summary = study.run(ev, &mut |_| calls += 1).unwrap();
    assert_eq!(
        calls, summary.finished,
        "one progress call per finished trial"
    );
    study.trials().unwrap()
}

fn memory_study(cfg: StudyConfig) -> Study {
    Study::create_in(Box::new(SqliteStore::in_memory().unwrap()), cfg).unwrap()
}

fn key(
    t: &TrialRecord,
) -> (
    u64,
    String,
    TrialStatus,
    Option<u64>,
    Option<u64>,
    Option<u64>,
) {
    (
        t.number,
        t.hash.clone(),
        t.status,
        t.quality.map(f64::to_bits),
        t.latency_ms.map(f64::to_bits),
        t.duplicate_of,
    )
}

/// A four-architecture space, so that evolution proposes duplicates.
fn small_space(dir: &Path) -> String {
    let text = r#"
name = "four"
[stem]
base_channels = 32
time_embed_dim = 128
cross_attention_dim = 64
heads = 2
norm_groups = 8
[knobs]
stages = [3]
layouts = ["diffusers"]
mid_resnets = [1]
mid_attentions = [0]
[[stage]]
out_channels = [32]
down_resnets = [1, 2]
down_attentions = [0]
up_attentions = [0]
[[stage]]
out_channels = [32, 64]
down_resnets = [1]
down_attentions = [0]
up_attentions = [0]
[[stage]]
out_channels = [64]
down_resnets = [1]
down_attentions = [0]
up_attentions = [0]
[constraints]
latent = 16
text_len = 16
"#;
    let path = dir.join("four.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn every_trial_is_final_and_infeasible_ones_are_never_trained() {
    let q = CountingQuality::default();
    let mut cfg = config("t", AGING, 40);
    cfg.constraints.max_params = Some(3_000_000);
    let trials = run(&mut memory_study(cfg), &q);
    assert_eq!(trials.len(), 40);
    assert!(trials.iter().all(|t| t.status.is_final()));
    let seen = q.seen.lock().unwrap();
    let infeasible: Vec<&TrialRecord> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Infeasible)
        .collect();
    assert!(!infeasible.is_empty(), "the budget makes some infeasible");
    for t in &infeasible {
        assert!(
            !seen.contains_key(&t.hash),
            "trial {} was trained",
            t.number
        );
        assert!(t.quality.is_none());
        assert!(t.violation.unwrap() > 0.0);
        assert!(t
            .error
            .as_deref()
            .unwrap()
            .contains("infeasible by prediction"));
    }
    for t in trials.iter().filter(|t| t.status == TrialStatus::Done) {
        assert!(t.latency_ms.unwrap() <= 1.75);
        assert!(t.params.unwrap() <= 3_000_000);
        assert!(t.block_latency.as_deref().unwrap().contains("\"ms\""));
    }
}

/// TEST FIXTURE: [`SyntheticQuality`] that records the seed of every evaluation.
#[derive(Default)]
struct SeedLog {
    inner: SyntheticQuality,
    seeds: Mutex<Vec<(String, u64)>>,
}

impl QualityEvaluator for SeedLog {
    fn describe(&self) -> String {
        "seed-logging TEST FIXTURE".into()
    }
    fn evaluate(
        &self,
        arch: &unas_space::UNetArch,
        seed: u64,
    ) -> Result<unas_search::QualityResult, unas_search::QualityError> {
        self.seeds.lock().unwrap().push((arch.hash_id(), seed));
        self.inner.evaluate(arch, seed)
    }
}

#[test]
fn every_candidate_of_a_study_trains_with_the_same_seed() {
    // Common random numbers: trials and reference archs get one evaluation seed, from the
    // study seed alone, so the differences between candidates are not seed-to-seed noise.
    let q = SeedLog::default();
    let mut cfg = config("crn", AGING, 16);
    cfg.latency.budget_ms = 100.0;
    cfg.references = vec!["tiny".into(), "tiny-nas".into()];
    let mut study = memory_study(cfg.clone());
    let trials = run(&mut study, &q);
    let refs = study.references().unwrap();
    let seeds = q.seeds.lock().unwrap();
    let archs: HashSet<&String> = seeds.iter().map(|(h, _)| h).collect();
    assert!(archs.len() >= 8, "{} archs evaluated", archs.len());
    let seed = eval_seed(cfg.seed);
    for (h, s) in seeds.iter() {
        assert_eq!(
            *s, seed,
            "{h} was evaluated with seed {s}, not the study's {seed}"
        );
    }
    for t in trials.iter().chain(&refs) {
        assert_eq!(t.eval_seed, seed, "{} `{}`", t.number, t.hash);
    }
    // Another study seed, another (common) evaluation seed.
    assert_ne!(eval_seed(cfg.seed + 1), seed);
}

#[test]
fn duplicates_are_never_evaluated_twice() {
    let dir = tempfile::tempdir().unwrap();
    let q = CountingQuality::default();
    let mut cfg = config("dup", AGING, 30);
    cfg.space = small_space(dir.path());
    cfg.latency.budget_ms = 100.0;
    let trials = run(&mut memory_study(cfg), &q);
    let dups: Vec<&TrialRecord> = trials.iter().filter(|t| t.duplicate_of.is_some()).collect();
    assert!(dups.len() >= 20, "four archs, thirty trials");
    for (h, n) in q.seen.lock().unwrap().iter() {
        assert_eq!(*n, 1, "{h} evaluated {n} times");
    }
    for d in dups {
        let m = &trials[d.duplicate_of.unwrap() as usize];
        assert_eq!(m.hash, d.hash);
        assert!(m.duplicate_of.is_none() && m.number < d.number);
        assert_eq!((d.status, d.quality), (m.status, m.quality));
    }
}

#[test]
fn same_settings_reproduce_whatever_the_jobs() {
    for c in [
        AGING,
        ControllerConfig::Nsga2 { population: 8 },
        ControllerConfig::Random,
    ] {
        let mut a = config("r", c.clone(), 32);
        a.window = Some(3);
        let mut b = a.clone();
        b.jobs = 3;
        let ta = run(&mut memory_study(a.clone()), &SyntheticQuality::default());
        let tb = run(&mut memory_study(b), &SyntheticQuality::default());
        let ka: Vec<_> = ta.iter().map(key).collect();
        let kb: Vec<_> = tb.iter().map(key).collect();
        assert_eq!(ka, kb, "{c:?}");
        let mut other = a.clone();
        other.seed = 8;
        let tc = run(&mut memory_study(other), &SyntheticQuality::default());
        assert_ne!(ka, tc.iter().map(key).collect::<Vec<_>>(), "{c:?}");
    }
}

#[test]
fn failures_are_recorded_and_the_search_goes_on() {
    let q = SyntheticQuality {
        fail_one_in: 4,
        panic_one_in: 5,
        nan_one_in: 6,
        ..Default::default()
    };
    let mut cfg = config("f", ControllerConfig::Nsga2 { population: 8 }, 32);
    cfg.latency.budget_ms = 100.0;
    cfg.jobs = 2;
    let trials = run(&mut memory_study(cfg), &q);
    assert_eq!(trials.len(), 32);
    let errors: Vec<&str> = trials
        .iter()
        .filter(|t| t.status == TrialStatus::Failed)
        .map(|t| t.error.as_deref().unwrap())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("synthetic failure")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("panicked")), "{errors:?}");
    assert!(
        errors.iter().any(|e| e.contains("not finite")),
        "{errors:?}"
    );
    assert!(trials.iter().any(|t| t.status == TrialStatus::Done));
}

#[test]
fn a_study_with_no_feasible_trial_reports_the_least_violating() {
    let q = CountingQuality::default();
    let mut cfg = config("none", ControllerConfig::Nsga2 { population: 6 }, 18);
    cfg.latency.budget_ms = 0.01;
    let mut study = memory_study(cfg);
    let trials = run(&mut study, &q);
    assert!(trials.iter().all(|t| t.status == TrialStatus::Infeasible));
    assert!(q.seen.lock().unwrap().is_empty());
    let r = study.results().unwrap();
    assert!(!r.feasible);
    assert_eq!(r.front.len(), 5);
    assert_eq!(r.hypervolume, 0.0);
    let v: Vec<f64> = r.front.iter().map(|t| t.violation.unwrap()).collect();
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
    let min = trials
        .iter()
        .map(|t| t.violation.unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(v[0], min);
}

#[test]
fn results_give_the_front_and_its_knee() {
    let mut study = memory_study(config("res", AGING, 40));
    let trials = run(&mut study, &SyntheticQuality::default());
    let r = study.results().unwrap();
    assert!(r.feasible && !r.front.is_empty() && r.hypervolume > 0.0);
    let knee = r.knee.unwrap();
    assert!(r.front.iter().any(|t| t.number == knee));
    // Front members are not dominated by any done trial.
    for f in &r.front {
        let (l, q) = (f.latency_ms.unwrap(), f.quality.unwrap());
        assert!(!trials.iter().any(|t| t.status == TrialStatus::Done
            && t.latency_ms.unwrap() <= l
            && t.quality.unwrap() <= q
            && (t.latency_ms.unwrap() < l || t.quality.unwrap() < q)));
    }
}

#[test]
fn reopening_checks_settings() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("s", AGING, 12);
    let first = {
        let mut s = Study::create(dir.path(), cfg.clone()).unwrap();
        run(&mut s, &SyntheticQuality::default())
    };
    // Same settings (other jobs): reopens; nothing left to do.
    let mut again = cfg.clone();
    again.jobs = 4;
    again.window = Some(1);
    let mut s = Study::create(dir.path(), again).unwrap();
    let q = CountingQuality::default();
    let trials = run(&mut s, &q);
    assert_eq!(trials, first);
    assert!(q.seen.lock().unwrap().is_empty());
    // Different seed: refused, naming the field.
    let mut other = cfg.clone();
    other.seed = 1;
    let e = Study::create(dir.path(), other).err().unwrap();
    assert!(matches!(e, SearchError::SettingsMismatch { .. }));
    assert!(e.to_string().contains("config.seed"), "{e}");
    // `open` uses the stored settings.
    let s = Study::open(dir.path()).unwrap();
    assert_eq!(s.config().seed, 7);
    let e = Study::open(&dir.path().join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no study found") && e.contains("study.sqlite"),
        "{e}"
    );
}

#[test]
fn strategy_benchmark_compares_with_random() {
    let profile = DeviceProfile::load("a10g").unwrap();
    let q = SyntheticQuality::default();
    let base = config("bench", AGING, 40);
    let strategies = [
        ControllerConfig::Aging {
            population: 10,
            sample: 3,
        },
        ControllerConfig::Nsga2 { population: 10 },
        ControllerConfig::Random,
    ];
    let seeds = [1, 2, 3, 4, 5];
    let r = strategy_benchmark(&base, &strategies, &seeds, &profile, &q).unwrap();
    eprintln!("{}", r.markdown());
    assert_eq!(r.strategies.len(), 3);
    assert_eq!(r.strategies[2].ratio_to_random, 1.0);
    for s in &r.strategies {
        assert_eq!(s.hypervolumes.len(), 5);
        assert!(s.mean > 0.0 && s.ratio_to_random.is_finite(), "{s:?}");
        assert!(s.ratio_ci[0] <= s.ratio_ci[1], "{s:?}");
        assert_eq!(s.trials_to_95.len(), 5);
        assert!(s
            .trials_to_95
            .iter()
            .flatten()
            .all(|&k| (1..=40).contains(&k)));
    }
    assert_eq!(r.strategies[2].ratio_ci, [1.0, 1.0]);
    // On every seed the strategy with the best final hypervolume reached 95 % of it.
    for j in 0..5 {
        let best = r
            .strategies
            .iter()
            .max_by(|a, b| a.hypervolumes[j].total_cmp(&b.hypervolumes[j]))
            .unwrap();
        assert!(best.trials_to_95[j].is_some(), "{best:?}");
    }
    assert!(r.markdown().contains("trials to 95 % of best"));
    for s in &r.strategies {
        assert_eq!(s.duplicates.len(), 5);
        assert!(s.duplicates.iter().all(|&d| d < 40), "{s:?}");
    }
    assert!(r.quality_evaluations > 0);
    let e = strategy_benchmark(&base, &strategies[..2], &seeds, &profile, &q)
        .err()
        .unwrap();
    assert!(e.to_string().contains("random"), "{e}");
}
