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

/// A time-to-image study on this machine's table (`latency.objective = "image"`): the text
/// encoder and VAE decoder are timed here when the study is created, each candidate carries
/// its own step count (quality sampled at it), and the report and the export are per image.
#[test]
fn time_to_image_search_reports_seconds_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let study = tiny_study("tti", 6, 30.0).replace(
        "budget_ms = 30",
        "objective = \"image\"\nsampling_steps = [2, 4]\nbudget_quantile = 0.5",
    );
    assert!(study.contains("objective = \"image\""));
    std::fs::write(d.join("study.toml"), study).unwrap();
    let o = unas_in(d, &["search", "--config", "study.toml", "--quiet"]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("timing this machine's text encoder and VAE decoder"),
        "{err}"
    );
    assert!(err.contains("ms per image at "), "{err}");
    let run = d.join("runs/tti");
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(md.contains("time per image (s)"), "{md}");
    assert!(
        md.contains("Time to an image: the sampling step count is a knob (2, 4)"),
        "{md}"
    );
    assert!(md.contains("measured here: caption encoder"), "{md}");
    assert!(
        md.contains("at 4 steps |"),
        "references at the largest count: {md}"
    );
    assert!(md.contains("ms per image"), "{md}");
    let svg = std::fs::read_to_string(run.join("pareto.svg")).unwrap();
    assert!(svg.contains("time per image (s)"));
    let o = unas_in(d, &["export", "runs/tti", "--pick", "0", "--out", "final"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let toml = std::fs::read_to_string(d.join("final/unet-nas.toml")).unwrap();
    assert!(toml.contains("ms per image at "), "{toml}");
    assert!(toml.contains("sampling_steps = "), "{toml}");
    // A per-step quality objective cannot price steps: refused, naming the field.
    let bad = tiny_study("bad", 2, 30.0)
        .replace("budget_ms = 30", "objective = \"image\"\nbudget_ms = 30")
        .replace(
            "[quality]\n",
            "[quality]\nobjective = \"supernet-val-loss\"\n",
        );
    std::fs::write(d.join("bad.toml"), bad).unwrap();
    let o = unas_in(d, &["search", "--config", "bad.toml", "--out", "bad"]);
    assert_input_error(&o, &["bad.toml", "latency.objective", "supernet-val-loss"]);
    assert!(!d.join("bad").exists(), "nothing half-written");
}

/// The shipped A10G time-to-image study (30 trials instead of 400; quality from the synthetic
/// TEST FIXTURE, not a quality metric, through the test build's hook): its front and its
/// references are in seconds per image on the A10G profile, SD1.5 and DeciDiffusion at 50 steps,
/// and the report sets the knee against them.
#[test]
fn a10g_time_to_image_study_reports_seconds_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = std::fs::read_to_string(root().join("configs/a10g-512-time-to-image.toml"))
        .unwrap()
        .replace("trials = 400", "trials = 30")
        .replace("population = 64", "population = 8")
        .replace("sample = 16", "sample = 4");
    assert!(cfg.contains("trials = 30") && cfg.contains("population = 8"));
    std::fs::write(d.join("study.toml"), cfg).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_unas"))
        .args([
            "search",
            "--config",
            "study.toml",
            "--quiet",
            "--out",
            "run",
        ])
        .current_dir(d)
        .env("UNAS_CACHE_DIR", d.join(".unas-cache"))
        .env("UNAS_TEST_SYNTHETIC_QUALITY", "0")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("budget 2200 ms per image"), "{err}");
    let md = std::fs::read_to_string(d.join("run/report.md")).unwrap();
    assert!(md.contains("time per image (s)"), "{md}");
    assert!(md.contains("profile:a10g kernels"), "{md}");
    for r in ["sd15", "decidiffusion"] {
        assert!(md.contains(&format!("against {r} at 50 steps")), "{md}");
    }
    // SD1.5's U-Net at 50 steps: the profile's whole-pipeline prediction, in seconds.
    let o = Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(["latency", "--model", "profile:a10g", "--arch", "sd15"])
        .args(["--pipeline-steps", "50"])
        .output()
        .unwrap();
    let out = text(&o.stdout) + &text(&o.stderr);
    let secs = out
        .lines()
        .find_map(|l| l.strip_prefix("pipeline: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        md.contains("| sd15 |") && md.contains(secs),
        "sd15 at {secs} s per image in: {md}"
    );
}

/// A folder holding the shipped A10G time-to-image study as `study.toml`.
fn a10g_time_to_image_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("configs/a10g-512-time-to-image.toml"),
        dir.path().join("study.toml"),
    )
    .unwrap();
    dir
}

/// `unas search evaluate`: the knobs first, then one reply per request — a candidate's
/// status, per-image latency and quality (the synthetic TEST FIXTURE through the test build's
/// hook, not a quality metric), or an error naming the bad request; the same request twice
/// gives the same reply.
#[test]
fn evaluate_serves_the_objectives_as_json_lines() {
    use std::io::Write;
    let dir = a10g_time_to_image_dir();
    let d = dir.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_unas"))
        .args([
            "search",
            "evaluate",
            "--config",
            "study.toml",
            "--out",
            "ev",
        ])
        .current_dir(d)
        .env("UNAS_TEST_SYNTHETIC_QUALITY", "0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let first = serde_json::json!({"choices": {}});
    {
        let mut stdin = child.stdin.take().unwrap();
        // All knobs at their first choice, twice; then a missing knob; then not JSON.
        let space = unas_space::SearchSpace::load("default").unwrap();
        let mut all: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
        for k in space.flat_knobs() {
            all.insert(k.name, 0.into());
        }
        all.insert("sampling_steps".into(), 0.into());
        let req = serde_json::json!({ "choices": all });
        writeln!(stdin, "{req}\n{req}\n{first}\nnot json").unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    let knobs = lines[0]["knobs"].as_array().unwrap();
    assert!(knobs.iter().any(|k| k["name"] == "sampling_steps"));
    assert_eq!(lines[0]["budget_ms"], 2200.0);
    let a = &lines[1];
    assert!(
        ["done", "infeasible"].contains(&a["status"].as_str().unwrap()),
        "{a}"
    );
    assert!(a["latency_ms"].as_f64().unwrap() > 141.0, "per image: {a}");
    assert_eq!(lines[1], lines[2]);
    assert!(lines[3]["error"]
        .as_str()
        .unwrap()
        .contains("no choice for knob"));
    assert!(lines[4]["error"].as_str().unwrap().contains("bad request"));
}

/// `unas search benchmark` on a time-to-image study (quality from the synthetic TEST FIXTURE
/// through the test build's hook, not a quality metric): the per-image parts are resolved as
/// `unas search` resolves them, every strategy gets its row, evaluations land in the cache.
#[test]
fn benchmark_runs_on_a_time_to_image_study() {
    let dir = a10g_time_to_image_dir();
    let d = dir.path();
    let o = Command::new(env!("CARGO_BIN_EXE_unas"))
        .args([
            "search",
            "benchmark",
            "--config",
            "study.toml",
            "--seeds",
            "2",
        ])
        .args(["--trials", "8", "--out", "b", "--quiet"])
        .current_dir(d)
        .env("UNAS_TEST_SYNTHETIC_QUALITY", "0")
        .output()
        .unwrap();
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("time to an image: 141."), "{err}");
    let md = std::fs::read_to_string(d.join("b/strategy-benchmark.md")).unwrap();
    for row in ["| aging |", "| nsga2 |", "| random |"] {
        assert!(md.contains(row), "{row} in {md}");
    }
    let cached = std::fs::read_dir(d.join("b"))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("quality-cache-")
        });
    assert!(cached);
}
