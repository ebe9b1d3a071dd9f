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

/// The sample-based supernet proxies of `unas quality calibrate` (`--paired-steps`,
/// `--fd-steps`) on the shipped supernet and data, over the committed calibration
/// architectures and ground truth (nothing is trained): each architecture gets one
/// `supernet-paired@K`, `supernet-fd@K` and `supernet-kid@K` row, summarised in summary.csv;
/// a rerun computes nothing again (no duplicate rows).
#[test]
fn calibrate_scores_sample_based_supernet_proxies_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cal");
    std::fs::create_dir_all(out.join("archs")).unwrap();
    let src = common::root().join("docs/calibration/sn300-seeds");
    for f in ["ground_truth.csv", "ground_truth_settings.json"] {
        std::fs::copy(src.join(f), out.join(f)).unwrap();
    }
    for e in std::fs::read_dir(src.join("archs")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, out.join("archs").join(p.file_name().unwrap())).unwrap();
    }
    // The shipped supernet's (seed 1) validation-loss rows, so that only the new proxies run.
    let kept: String = std::fs::read_to_string(src.join("proxy_scores.csv"))
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || l.contains(",supernet-val-loss,1,")
                || l.contains(",supernet-val-loss-rel,1,")
                || l.contains(",params,")
                || l.contains(",macs,")
        })
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    std::fs::write(out.join("proxy_scores.csv"), &kept).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_unas"))
            .current_dir(common::root())
            .env("UNAS_CACHE_DIR", dir.path().join(".unas-cache"))
            .args([
                "quality",
                "calibrate",
                "--space",
                "tiny-depth",
                "-n",
                "12",
                "--seeds",
                "5",
                "--steps",
                "1000",
                "--budgets",
                "200,400,600,800",
                "--config",
                "configs/proxy/calibration-gt.toml",
                "--supernets",
                "configs/supernets/tiny-depth",
                "--paired-steps",
                "2",
                "--fd-steps",
                "2",
                "--out",
            ])
            .arg(&out)
            .output()
            .expect("run unas")
    };
    let o = run();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let scores = std::fs::read_to_string(out.join("proxy_scores.csv")).unwrap();
    for proxy in ["supernet-paired@2", "supernet-fd@2", "supernet-kid@2"] {
        let values: Vec<f64> = scores
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                (f[1] == proxy && f[2] == "1").then(|| f[3].parse().unwrap())
            })
            .collect();
        assert_eq!(values.len(), 12, "{proxy} in {scores}");
        assert!(values.iter().all(|v| v.is_finite()), "{proxy}: {values:?}");
        let summary = std::fs::read_to_string(out.join("summary.csv")).unwrap();
        assert!(summary.contains(&format!("\n{proxy},12,")), "{summary}");
    }
    let o = run();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("proxy_scores.csv")).unwrap(),
        scores,
        "a rerun adds nothing"
    );
}
