//! CLI-level tests of `unas search`, `unas report` and `unas export`.
//!
//! The end-to-end test runs the real proxy-quality evaluator at a tiny budget (4 training
//! steps, 16 samples, 200 images; a 20-step VAE and a 1-epoch extractor in a private cache) on the quickstart's objectives.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn unas_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .current_dir(dir)
        // A private proxy cache: nothing outside the test's folder is read or written.
        .env("UNAS_CACHE_DIR", dir.join(".unas-cache"))
        .output()
        .expect("run unas")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The quickstart study at a tiny budget: `trials` trials, 4 training steps, 16 samples.
fn tiny_study(name: &str, trials: usize, budget_ms: f64) -> String {
    format!(
        r#"
name = "{name}"
space = "tiny"
trials = {trials}
seed = 1
jobs = 2
references = ["tiny", "tiny-nas"]

[controller]
kind = "aging"
population = 4
sample = 2

[latency]
model = "lut:{lut}"
budget_ms = {budget_ms}
latent = 16
batch = 2
text_len = 16
dtype = "f32"

[quality]
data = "builtin"
images = 200
val_items = 40
steps = 4
batch = 8
samples = 16
sampling_steps = 4
vae_steps = 20
extractor_images = 300
extractor_epochs = 1

[quality.recipe]
# 4 steps are too few for an EMA window (at least 10 iterates).
ema_fraction = 0.0
"#,
        lut = root().join("configs/devices/cpu-tiny.lut.toml").display()
    )
}

fn assert_input_error(o: &Output, needles: &[&str]) {
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    for n in needles {
        assert!(e.contains(n), "`{n}` not in: {e}");
    }
}

#[test]
fn bad_configs_and_run_dirs_exit_2_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Missing file.
    let o = unas_in(d, &["search", "--config", "nope.toml"]);
    assert_input_error(&o, &["nope.toml"]);
    // Unknown field: file and field named.
    let cfg = d.join("bad.toml");
    std::fs::write(
        &cfg,
        tiny_study("bad", 4, 20.0).replace("seed = 1", "sed = 1"),
    )
    .unwrap();
    let o = unas_in(d, &["search", "--config", "bad.toml"]);
    assert_input_error(&o, &["bad.toml", "sed"]);
    // Bad value: file and dotted field named.
    std::fs::write(&cfg, tiny_study("bad", 4, -3.0)).unwrap();
    let o = unas_in(d, &["search", "--config", "bad.toml"]);
    assert_input_error(&o, &["bad.toml", "latency.budget_ms"]);
    // Unknown [quality] field.
    std::fs::write(
        &cfg,
        tiny_study("bad", 4, 20.0).replace("steps = 4", "stepz = 4"),
    )
    .unwrap();
    let o = unas_in(d, &["search", "--config", "bad.toml"]);
    assert_input_error(&o, &["bad.toml", "stepz"]);
    // A lookup table measured at another setting.
    std::fs::write(
        &cfg,
        tiny_study("bad", 4, 20.0).replace("latent = 16", "latent = 32"),
    )
    .unwrap();
    let o = unas_in(d, &["search", "--config", "bad.toml", "--out", "lut-run"]);
    assert_input_error(&o, &["bad.toml", "latency.model", "latent 16", "latent 32"]);
    // Neither --config nor --resume.
    let o = unas_in(d, &["search"]);
    assert_input_error(&o, &["--config", "--resume"]);
    // A run directory that is not empty, without --resume.
    std::fs::write(&cfg, tiny_study("busy", 4, 20.0)).unwrap();
    std::fs::create_dir_all(d.join("runs/busy")).unwrap();
    std::fs::write(d.join("runs/busy/notes.txt"), "mine").unwrap();
    let o = unas_in(d, &["search", "--config", "bad.toml"]);
    assert_input_error(&o, &["runs/busy", "not empty", "--resume"]);
    // Resuming, reporting or exporting a directory without a study.
    for args in [
        vec!["search", "--resume", "runs/busy"],
        vec!["report", "runs/busy"],
        vec!["export", "runs/busy", "--pick", "knee"],
    ] {
        let o = unas_in(d, &args);
        assert_input_error(&o, &["runs/busy", "no study"]);
    }
    // A malformed pick.
    let o = unas_in(d, &["export", "runs/busy", "--pick", "kne"]);
    assert_input_error(&o, &["kne"]);
}

/// Real proxy training at a tiny budget: search (logging a line per trial without a
/// terminal), report, export, resume.
#[test]
fn search_reports_exports_and_resumes_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("study.toml"), tiny_study("e2e", 6, 30.0)).unwrap();
    // Without --quiet and with stderr piped (no terminal): no bar is drawn, and every
    // finished trial gets its log line.
    let o = unas_in(d, &["search", "--config", "study.toml"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}\n{}", text(&o.stdout));
    let run = d.join("runs/e2e");
    for f in [
        "study.sqlite",
        "study.toml",
        "report.html",
        "report.md",
        "pareto.svg",
        "pareto.png",
        "hypervolume.svg",
        "hypervolume.png",
        "composition.svg",
        "composition.png",
    ] {
        assert!(run.join(f).is_file(), "{f} missing; stderr: {err}");
    }
    assert!(err.contains("reference tiny-nas"), "{err}");
    for k in 1..=6 {
        let line = format!("({k}/6): ");
        assert_eq!(
            err.lines().filter(|l| l.contains(&line)).count(),
            1,
            "one line for the {k}th finished trial: {err}"
        );
    }
    assert!(err.contains(", ETA "), "{err}");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("## Reference architectures"), "{md}");
    assert!(md.contains("| tiny-nas |"), "{md}");
    assert!(md.contains("quality: fd["), "{md}");
    // The knee was exported if anything was feasible; export the fastest either way when
    // possible, else trial 0.
    let pick = if md.contains("No trial is feasible") {
        "0"
    } else {
        assert!(run.join("unet-nas.toml").is_file() && run.join("config.json").is_file());
        "fastest"
    };
    let o = unas_in(d, &["export", "runs/e2e", "--pick", pick, "--out", "final"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let toml = d.join("final/unet-nas.toml");
    let o = unas_in(
        d,
        &["space", "show", toml.to_str().unwrap(), "--latent", "16"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("final/config.json")).unwrap())
            .unwrap();
    let from_json = unas_space::diffusers::import_config(&json).unwrap();
    let from_toml = unas_space::load_arch(toml.to_str().unwrap()).unwrap();
    assert_eq!(from_json.hash_id(), from_toml.hash_id());
    // Resume of a finished study: nothing re-evaluated.
    let o = unas_in(d, &["search", "--resume", "runs/e2e", "--quiet"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("0 trials this run (0 quality evaluations"),
        "{err}"
    );
    // report regenerates.
    std::fs::remove_file(run.join("report.html")).unwrap();
    let o = unas_in(d, &["report", "runs/e2e"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(run.join("report.html").is_file());
}
