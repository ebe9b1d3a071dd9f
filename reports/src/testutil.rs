//! A synthetic study in an in-memory store, for the report tests (made-up numbers, no model).

use unas_evaluator::latency::Dtype;
use unas_search::engine::REFERENCES_SUFFIX;
use unas_search::objective::{ObjectivesJson, QualityResult, Violations};
use unas_search::{
    ConstraintsConfig, ControllerConfig, LatencyConfig, SqliteStore, Store, StudyConfig,
    StudyRecord, TrialRecord, TrialStatus,
};
use unas_space::rng::Rng;
use unas_space::{CostQuery, SearchSpace, UNetArch};

use crate::ReportInput;

pub fn config(budget_ms: f64) -> StudyConfig {
    StudyConfig {
        name: "synthetic".into(),
        space: "tiny".into(),
        controller: ControllerConfig::Aging {
            population: 4,
            sample: 2,
        },
        trials: 12,
        latency: LatencyConfig {
            model: "lut:configs/devices/cpu-tiny.lut.toml".into(),
            budget_ms,
            budget_quantile: None,
            latent: 16,
            batch: 2,
            text_len: 16,
            dtype: Dtype::F32,
            objective: Default::default(),
            sampling_steps: Vec::new(),
            reference_steps: None,
            image_parts: None,
        },
        constraints: ConstraintsConfig::default(),
        seed: 3,
        jobs: 1,
        window: None,
        quality_reference: None,
        quality: Default::default(),
        halving: None,
        references: vec!["tiny".into(), "tiny-nas".into()],
    }
}

/// A made-up trial: latency from MACs, quality falling with MACs; status from the budget;
/// trial 5 failed.
fn record(study: &str, number: u64, arch: UNetArch, budget_ms: f64, origin: &str) -> TrialRecord {
    let cost = arch
        .plan()
        .unwrap()
        .cost(&CostQuery {
            height: 16,
            width: 16,
            batch: 2,
            text_len: 16,
        })
        .unwrap();
    let latency = made_up_latency(&arch);
    let quality = 50.0 / (1.0 + cost.macs as f64 / 1e8).sqrt() + (number % 3) as f64;
    let failed = number == 5 && !study.ends_with(REFERENCES_SUFFIX);
    let violation = ((latency - budget_ms) / budget_ms).max(0.0);
    let status = if failed {
        TrialStatus::Failed
    } else if violation > 0.0 {
        TrialStatus::Infeasible
    } else {
        TrialStatus::Done
    };
    let q = (status == TrialStatus::Done).then_some(quality);
    let objectives = ObjectivesJson {
        step_ms: None,
        latency_ms: Some(latency),
        quality: q,
        params: Some(cost.params),
        macs: Some(cost.macs),
        violations: Violations {
            latency: violation,
            ..Default::default()
        },
        quality_result: q.map(|score| QualityResult {
            score,
            metric: "fd[synthetic report test; 16 samples]".into(),
            details: [("kid".to_string(), 0.01)].into_iter().collect(),
        }),
        latency_source: Some("made up".into()),
    };
    TrialRecord {
        study: study.into(),
        number,
        hash: arch.hash_id(),
        arch,
        origin: origin.into(),
        status,
        duplicate_of: None,
        latency_ms: Some(latency),
        quality: q,
        params: Some(cost.params),
        macs: Some(cost.macs),
        violation: Some(violation),
        objectives: Some(serde_json::to_string(&objectives).unwrap()),
        block_latency: Some("[]".into()),
        eval_seed: number,
        latency_s: Some(0.0),
        quality_s: Some(0.0),
        attempts: 1,
        error: match status {
            TrialStatus::Failed => Some("quality evaluation failed: diverged at step 3".into()),
            TrialStatus::Infeasible => Some("infeasible by prediction: latency over".into()),
            _ => None,
        },
        created_ms: 0,
        started_ms: Some(0),
        finished_ms: Some(1),
    }
}

fn made_up_latency(arch: &UNetArch) -> f64 {
    let q = CostQuery {
        height: 16,
        width: 16,
        batch: 2,
        text_len: 16,
    };
    2.0 + arch.plan().unwrap().cost(&q).unwrap().macs as f64 / 2.0e8
}

/// A study of 12 trials (sampled from the tiny space) and the two reference archs in an
/// in-memory store, read back as a [`ReportInput`]. The budget is the made-up latency at
/// `quantile` of the trials (0: half the fastest, so nothing is feasible).
pub fn synthetic(quantile: f64) -> ReportInput {
    let space = SearchSpace::load("tiny").unwrap();
    let mut rng = Rng::seed(11);
    let archs: Vec<UNetArch> = (0..12)
        .map(|_| space.decode(&space.sample(&mut rng).unwrap()))
        .collect();
    let mut lat: Vec<f64> = archs.iter().map(made_up_latency).collect();
    lat.sort_by(f64::total_cmp);
    let budget_ms = if quantile <= 0.0 {
        lat[0] / 2.0
    } else {
        lat[((lat.len() - 1) as f64 * quantile).round() as usize]
    };
    let cfg = config(budget_ms);
    let mut store = SqliteStore::in_memory().unwrap();
    store
        .create_study(&StudyRecord {
            name: cfg.name.clone(),
            settings: serde_json::json!({ "config": cfg, "space": space }).to_string(),
            seed: cfg.seed,
            created_ms: 0,
        })
        .unwrap();
    for (n, arch) in archs.into_iter().enumerate() {
        let t = record(
            &cfg.name,
            n as u64,
            arch,
            budget_ms,
            "{\"kind\":\"random\"}",
        );
        store.insert_trial(&t).unwrap();
    }
    let refs = format!("{}{REFERENCES_SUFFIX}", cfg.name);
    store
        .create_study(&StudyRecord {
            name: refs.clone(),
            settings: "{}".into(),
            seed: cfg.seed,
            created_ms: 0,
        })
        .unwrap();
    for (i, name) in cfg.references.iter().enumerate() {
        let arch = unas_space::load_arch(name).unwrap();
        let origin = format!("{{\"kind\":\"reference\",\"name\":\"{name}\"}}");
        let t = record(&refs, i as u64, arch, budget_ms, &origin);
        store.insert_trial(&t).unwrap();
    }
    let mut study = unas_search::Study::open_in(Box::new(store), &cfg.name).unwrap();
    ReportInput::from_study(&mut study).unwrap()
}
