//! CLI-level test of `unas quality calibrate`: a tiny ground truth (3 architectures, 4 training
//! steps, 2 seeds) restricted with `--archs`, its protocol recorded in
//! `ground_truth_settings.json`, and a rerun with another training recipe refused (exit 2, no
//! row written) so rows of two protocols never mix in one mean; `--summary-only` at another
//! budget refused.

mod common;

use common::{text, unas_in, QUALITY};

fn rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

#[test]
fn calibrate_trains_the_named_archs_and_refuses_another_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.toml"), QUALITY).unwrap();
    let base = [
        "quality",
        "calibrate",
        "--space",
        "tiny-depth",
        "-n",
        "3",
        "--seeds",
        "2",
        "--steps",
        "4",
        "--budgets",
        "2",
        "--jobs",
        "2",
        "--out",
        "cal",
    ];
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        v
    }

    // An index past the architectures: one clear error, exit 2, nothing trained.
    let o = unas_in(d, &with(&base, &["--config", "data.toml", "--archs", "7"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--archs: `7`"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.join("cal/ground_truth.csv").exists());

    let o = unas_in(
        d,
        &with(&base, &["--config", "data.toml", "--archs", "0,2"]),
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(d.join("cal/ground_truth.csv")).unwrap();
    let mut archs: Vec<String> = std::fs::read_dir(d.join("cal/archs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    archs.sort();
    assert_eq!(archs.len(), 3, "{archs:?}");
    let id = |i: usize| archs[i][3..19].to_string();
    let finals: Vec<(String, String)> = rows(&csv)
        .into_iter()
        .filter(|r| r[4] == "final")
        .map(|r| (r[0].clone(), r[2].clone()))
        .collect();
    // Archs 0 and 2, seeds 0 and 1; arch 1 left for a later run.
    assert_eq!(finals.len(), 4, "{csv}");
    for (arch, _) in &finals {
        assert!(*arch == id(0) || *arch == id(2), "{arch} in {csv}");
    }
    let settings = std::fs::read_to_string(d.join("cal/ground_truth_settings.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(v["steps"], 4);
    assert_eq!(v["batch"], 4);
    assert_eq!(v["recipe"]["ema_fraction"], 0.0);
    let md = std::fs::read_to_string(d.join("cal/README.md")).unwrap();
    assert!(md.contains("Ground-truth protocol"), "{md}");

    // Another training recipe into the same folder: refused, the table untouched.
    let cosine = QUALITY.replace(
        "ema_fraction = 0.0",
        "ema_fraction = 0.0\nlr_schedule = \"cosine\"\nmax_grad_norm = 1.0",
    );
    std::fs::write(d.join("cosine.toml"), cosine).unwrap();
    let o = unas_in(d, &with(&base, &["--config", "cosine.toml"]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("ground_truth_settings.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.join("cal/ground_truth.csv")).unwrap(),
        csv
    );

    // The covering-network initialisation is another protocol too: refused here; into a new
    // folder it trains and is recorded.
    let o = unas_in(
        d,
        &with(&base, &["--config", "data.toml", "--init", "covering"]),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--init"), "{}", text(&o.stderr));
    let covering: Vec<&str> = with(
        &base,
        &[
            "--config",
            "data.toml",
            "--init",
            "covering",
            "--archs",
            "1",
        ],
    )
    .into_iter()
    .map(|x| if x == "cal" { "cal-covering" } else { x })
    .collect();
    let o = unas_in(d, &covering);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let settings =
        std::fs::read_to_string(d.join("cal-covering/ground_truth_settings.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(v["init"], "covering");
    let finals = rows(&std::fs::read_to_string(d.join("cal-covering/ground_truth.csv")).unwrap())
        .iter()
        .filter(|r| r[4] == "final")
        .count();
    assert_eq!(finals, 2);

    // The same protocol resumes: the missing architecture's two seeds, nothing retrained.
    let o = unas_in(d, &with(&base, &["--config", "data.toml"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let after = std::fs::read_to_string(d.join("cal/ground_truth.csv")).unwrap();
    assert!(after.starts_with(&csv), "rows kept as they were");
    let finals = rows(&after).iter().filter(|r| r[4] == "final").count();
    assert_eq!(finals, 6, "{after}");

    // Recomputing the summary at another budget would summarise nothing: refused (exit 2,
    // naming the protocol file's field), the summary untouched; at this budget it is rewritten
    // and the README names the exact command.
    let summary = std::fs::read_to_string(d.join("cal/summary.csv")).unwrap();
    let other: Vec<&str> = base
        .iter()
        .map(|&x| if x == "4" { "5" } else { x })
        .chain(["--summary-only"])
        .collect();
    let o = unas_in(d, &other);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("ground_truth_settings.json") && err.contains("field `steps`"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("cal/summary.csv")).unwrap(),
        summary
    );
    let o = unas_in(d, &with(&base, &["--summary-only"]));
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(d.join("cal/summary.csv")).unwrap(),
        summary
    );
    let md = std::fs::read_to_string(d.join("cal/README.md")).unwrap();
    assert!(
        md.contains("--space tiny-depth --steps 4 --budgets 2 --summary-only"),
        "{md}"
    );
}

/// `--layout` and `--per-stage-count`: the architectures are of that layout and shared evenly
/// over the stage counts; a layout that does not exist is one clear error (exit 2).
#[test]
fn calibrate_picks_per_stage_count_of_one_layout() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.toml"), QUALITY).unwrap();
    let args = |layout: &'static str| {
        vec![
            "quality",
            "calibrate",
            "--space",
            "tiny-depth",
            "-n",
            "4",
            "--layout",
            layout,
            "--per-stage-count",
            "--steps",
            "4",
            "--budgets",
            "2",
            "--max-runs",
            "0",
            "--config",
            "data.toml",
            "--out",
            "cal",
        ]
    };
    let o = unas_in(d, &args("sideways"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--layout `sideways`"),
        "{}",
        text(&o.stderr)
    );
    let o = unas_in(d, &args("flexible"));
    assert!(o.status.success(), "{}", text(&o.stderr));
    let mut stages = Vec::new();
    for e in std::fs::read_dir(d.join("cal/archs")).unwrap() {
        let a = unas_space::load_arch(e.unwrap().path().to_str().unwrap()).unwrap();
        assert_eq!(a.layout, unas_space::Layout::Flexible);
        stages.push(a.down.len());
    }
    stages.sort();
    assert_eq!(stages, vec![3, 3, 4, 4]);
}
