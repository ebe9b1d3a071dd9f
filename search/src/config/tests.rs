//! Tests of the study configuration: defaults, checks, normalisation.

use super::*;
use unas_evaluator::latency::{Dtype, LatencySetting};

fn src(text: &str) -> Source {
    Source {
        file: "study.toml".into(),
        text: text.into(),
    }
}

const OK: &str = r#"
name = "t"
trials = 10
[controller]
kind = "aging"
population = 4
sample = 2
[latency]
budget_ms = 10.0
"#;

#[test]
fn parses_with_defaults() {
    let c = StudyConfig::from_source(&src(OK)).unwrap();
    assert_eq!(
        c.controller,
        ControllerConfig::Aging {
            population: 4,
            sample: 2
        }
    );
    assert_eq!(c.space, "tiny");
    assert_eq!(c.jobs, 1);
    assert_eq!(c.window(), 1);
    assert_eq!(c.latency.model, "profile:a10g");
    assert_eq!(c.latency.setting(), LatencySetting::default());
}

#[test]
fn unknown_fields_are_named() {
    let e = StudyConfig::from_source(&src(&OK.replace("sample = 2", "sample = 2\nsamples = 3")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("study.toml") && e.contains("samples"), "{e}");
    let e = StudyConfig::from_source(&src(&format!("{OK}\nbogus = 1")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn bad_values_are_named() {
    let e = StudyConfig::from_source(&src(&OK.replace("sample = 2", "sample = 9")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("controller.sample"), "{e}");
    let e = StudyConfig::from_source(&src(&OK.replace("budget_ms = 10.0", "budget_ms = -1.0")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("latency.budget_ms") && e.contains("study.toml:"),
        "{e}"
    );
}

#[test]
fn halving_parses_and_bad_values_are_named() {
    let c = StudyConfig::from_source(&src(&format!("{OK}\n[halving]\nrungs = 3\n"))).unwrap();
    let h = c.halving.unwrap();
    assert_eq!((h.rungs, h.reduction), (3, 3));
    for (table, field) in [
        ("[halving]\nrungs = 1\n", "halving.rungs"),
        ("[halving]\nrungs = 2\nreduction = 1\n", "halving.reduction"),
        ("[halving]\nrungs = 2\nsteps = 4\n", "steps"),
        (
            "[quality]\nobjective = \"fd\"\nrung_finetune_steps = [50]\n",
            "quality.rung_finetune_steps",
        ),
        (
            "[quality]\nobjective = \"supernet-val-loss\"\nsupernets = \"sn\"\n\
             rung_finetune_steps = [50, 50]\n",
            "quality.rung_finetune_steps",
        ),
        (
            "[quality]\nobjective = \"supernet-paired\"\nsupernets = \"sn\"\n\
             rung_finetune_steps = [50]\n",
            "quality.rung_finetune_steps",
        ),
        (
            "[quality]\nobjective = \"supernet-paired\"\nsupernets = \"sn\"\n\
             paired_steps = 0\n",
            "quality.paired_steps",
        ),
    ] {
        let e = StudyConfig::from_source(&src(&format!("{OK}\n{table}")))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{table}: {e}");
    }
    // Without [halving], the stored settings are those of a study made before it existed;
    // likewise `paired_steps` at its default.
    let c = StudyConfig::from_source(&src(OK)).unwrap();
    let stored = serde_json::to_string(&c).unwrap();
    assert!(!stored.contains("halving") && !stored.contains("paired_steps"));
}

#[test]
fn a_relative_budget_resolves_to_the_quantile_of_the_predictions() {
    let t = OK.replace("budget_ms = 10.0", "budget_quantile = 0.5");
    let mut c = StudyConfig::from_source(&src(&t)).unwrap();
    assert_eq!(c.latency.budget_ms, 0.0);
    let space = c.load_space().unwrap();
    let model = c.latency.build().unwrap();
    let b = c.resolve_budget(&space, model.as_ref()).unwrap().unwrap();
    assert_eq!(c.latency.budget_ms, b);
    // About half of fresh samples fall under it.
    let mut rng = unas_space::rng::Rng::seed(99);
    let setting = c.latency.setting();
    let under = (0..200)
        .filter(|_| {
            let arch = space.decode(&space.sample(&mut rng).unwrap());
            model.predict(&arch, &setting).unwrap().total_ms <= b
        })
        .count();
    assert!((60..=140).contains(&under), "{under} of 200 under {b} ms");
    // Resolved once: a second call keeps it.
    assert_eq!(c.resolve_budget(&space, model.as_ref()).unwrap(), None);
    for (bad, field) in [
        ("budget_quantile = 1.5", "latency.budget_quantile"),
        ("budget_quantile = 0.0", "latency.budget_quantile"),
    ] {
        let e = StudyConfig::from_source(&src(&OK.replace("budget_ms = 10.0", bad)))
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{bad}: {e}");
    }
    let e = StudyConfig::from_source(&src(&OK.replace("budget_ms = 10.0\n", "")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("budget_quantile"), "{e}");
}

#[test]
fn builds_profile_models() {
    let mut c = StudyConfig::from_source(&src(OK)).unwrap();
    assert!(c.latency.build().unwrap().describe().contains("a10g"));
    c.latency.model = "a10".into();
    assert!(c.latency.build().unwrap().describe().contains("a10"));
    c.latency.model = "profile:nope".into();
    let e = c.latency.build().err().unwrap().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn quality_and_references_parse() {
    let c = StudyConfig::from_source(&src(OK)).unwrap();
    assert_eq!(c.quality, ProxyConfig::default());
    assert!(c.references.is_empty());
    let t = format!(
        "references = [\"tiny\", \"tiny-nas\"]\n{OK}\n[quality]\nsteps = 4\n\
         [quality.recipe]\nema_fraction = 0.0\n"
    );
    let c = StudyConfig::from_source(&src(&t)).unwrap();
    assert_eq!(c.quality.steps, 4);
    assert_eq!(c.references, ["tiny", "tiny-nas"]);
    // 4 steps with the default EMA (the last half) would average 2 iterates: refused,
    // naming the field.
    let t = format!("{OK}\n[quality]\nsteps = 4\n");
    let e = StudyConfig::from_source(&src(&t)).unwrap_err().to_string();
    assert!(
        e.contains("quality.recipe.ema_fraction") && e.contains("study.toml:"),
        "{e}"
    );
    let t = format!("references = [\"nope-arch\"]\n{OK}");
    let e = StudyConfig::from_source(&src(&t)).unwrap_err().to_string();
    assert!(e.contains("references") && e.contains("nope-arch"), "{e}");
    let t = format!("{OK}\n[quality]\nsamples = 1\n");
    let e = StudyConfig::from_source(&src(&t)).unwrap_err().to_string();
    assert!(
        e.contains("quality.samples") && e.contains("study.toml:"),
        "{e}"
    );
    let t = format!("{OK}\n[quality]\nstepz = 4\n");
    let e = StudyConfig::from_source(&src(&t)).unwrap_err().to_string();
    assert!(e.contains("stepz"), "{e}");
}

#[test]
fn the_shipped_study_files_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(e) = StudyConfig::load(&path) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 2, "{n} study files in {dir}");
}

#[test]
fn builds_lookup_tables_and_checks_their_setting() {
    let lut = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../configs/devices/cpu-tiny.lut.toml"
    );
    let mut c = StudyConfig::from_source(&src(OK)).unwrap();
    c.latency.model = format!("lut:{lut}");
    let e = c.latency.build().err().unwrap().to_string();
    assert!(
        e.contains("latency.model") && e.contains("latent 16") && e.contains("latent 64"),
        "{e}"
    );
    c.latency.latent = 16;
    c.latency.text_len = 16;
    c.latency.dtype = Dtype::F32;
    let m = c.latency.build().unwrap();
    let arch = unas_space::load_arch("tiny").unwrap();
    let r = m.predict(&arch, &c.latency.setting()).unwrap();
    assert!(r.total_ms > 0.0 && r.total_ms.is_finite());
    c.latency.model = "lut:/nonexistent.lut.toml".into();
    let e = c.latency.build().err().unwrap().to_string();
    assert!(e.contains("/nonexistent.lut.toml"), "{e}");
}

#[test]
fn random_and_nsga2_parse() {
    let t = OK.replace(
        "kind = \"aging\"\npopulation = 4\nsample = 2",
        "kind = \"random\"",
    );
    let c = StudyConfig::from_source(&src(&t)).unwrap();
    assert_eq!(c.controller, ControllerConfig::Random);
    let t = OK.replace(
        "kind = \"aging\"\npopulation = 4\nsample = 2",
        "kind = \"nsga2\"",
    );
    let c = StudyConfig::from_source(&src(&t)).unwrap();
    assert_eq!(c.controller, ControllerConfig::Nsga2 { population: 20 });
}
