//! Lookup-table logic (no timing): the covering architectures contain every block variant of
//! the space, predictions are sums plus the overhead, and a missing variant is an error that
//! names it.

use std::collections::BTreeSet;

use unas_evaluator::latency::lut::{
    covering_archs, variant_key, LookupTable, LutEntry, LutProvenance,
};
use unas_evaluator::latency::measured::Repeats;
use unas_evaluator::latency::{Dtype, LatencyModel, LatencySetting};
use unas_evaluator::EvalError;
use unas_space::rng::Rng;
use unas_space::{SearchSpace, UNetArch};

fn variants(arch: &UNetArch, s: &LatencySetting) -> BTreeSet<String> {
    let plan = arch.plan().unwrap();
    plan.steps
        .iter()
        .map(|st| variant_key(&plan.modules[st.module].kind, st, s))
        .collect()
}

fn setting() -> LatencySetting {
    LatencySetting {
        latent: 16,
        batch: 2,
        text_len: 16,
        dtype: Dtype::F32,
    }
}

fn table_for(space: &SearchSpace, s: &LatencySetting) -> LookupTable {
    let all: BTreeSet<String> = covering_archs(space)
        .iter()
        .flat_map(|a| variants(a, s))
        .collect();
    LookupTable {
        measured: LutProvenance {
            device: "test".into(),
            backend: "none".into(),
            burn_version: "0.21.0".into(),
            date: "2026-01-01".into(),
            space: space.name.clone(),
            repeats: Repeats::default(),
            overhead_fit_archs: 0,
            statistic: Default::default(),
            noise: None,
            reference_ms: None,
            cpu: None,
            threads: None,
            load: None,
            validation: None,
        },
        setting: *s,
        overhead_ms: 0.5,
        // Synthetic entries: 1 ms per variant, so a prediction counts block runs.
        entry: all
            .into_iter()
            .map(|variant| LutEntry {
                variant,
                ms: 1.0,
                iqr_ms: 0.0,
            })
            .collect(),
        file: "synthetic.lut.toml".into(),
    }
}

#[test]
fn covering_archs_contain_every_variant_of_sampled_archs() {
    for name in ["tiny", "default"] {
        let space = SearchSpace::load(name).unwrap();
        let s = LatencySetting {
            latent: 64,
            ..setting()
        };
        let table = table_for(&space, &s);
        let mut rng = Rng::seed(1);
        for _ in 0..2000 {
            let arch = space.decode(&space.sample(&mut rng).unwrap());
            let r = table.predict(&arch, &s).unwrap();
            let runs = arch.plan().unwrap().steps.len() as f64;
            assert!((r.total_ms - (runs + 0.5)).abs() < 1e-9);
        }
    }
}

#[test]
fn a_missing_variant_is_an_error_naming_it() {
    let space = SearchSpace::load("tiny").unwrap();
    let s = setting();
    let mut table = table_for(&space, &s);
    let removed = table.entry.remove(3).variant;
    let arch = covering_archs(&space)
        .into_iter()
        .find(|a| variants(a, &s).contains(&removed))
        .unwrap();
    match table.predict(&arch, &s) {
        Err(EvalError::MissingVariant { variant, table }) => {
            assert_eq!(variant, removed);
            assert_eq!(table.to_str(), Some("synthetic.lut.toml"));
        }
        other => panic!("expected a missing-variant error, got {other:?}"),
    }
    // Another setting than the table's is refused, not silently answered.
    let other = LatencySetting { batch: 1, ..s };
    assert!(matches!(
        table.predict(&arch, &other),
        Err(EvalError::Unsupported(_))
    ));
}

#[test]
fn tables_round_trip_through_toml() {
    let space = SearchSpace::load("tiny").unwrap();
    let s = setting();
    let table = table_for(&space, &s);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.lut.toml");
    table.save(&path).unwrap();
    let back = LookupTable::load(&path).unwrap();
    assert_eq!(back.entry, table.entry);
    assert_eq!(back.setting, table.setting);
    assert_eq!(back.overhead_ms, table.overhead_ms);
}
