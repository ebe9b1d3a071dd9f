//! CLI-level test of `unas quality recipes`: two seeds of both recipes at a tiny budget (4
//! training steps on 200 built-in images, in a private cache), resumed without retraining, and
//! refused when the settings of the rows kept differ.

mod common;

use common::{text, unas_in, QUALITY};

#[test]
fn recipe_study_runs_resumes_and_refuses_other_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.toml"), QUALITY).unwrap();
    let args = [
        "quality",
        "recipes",
        "--config",
        "data.toml",
        "--seeds",
        "0,1",
        "--compare-steps",
        "2,3",
        "--claim",
        "2,3",
        "--jobs",
        "2",
        "--out",
        "study",
    ];
    let o = unas_in(d, &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let csv = std::fs::read_to_string(d.join("study/recipes.csv")).unwrap();
    // Header + 2 recipes x 2 seeds x 2 step counts.
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    let md = std::fs::read_to_string(d.join("study/README.md")).unwrap();
    assert!(md.contains("B@2 − A@3"), "{md}");
    assert!(md.contains("seed 0:") && md.contains("seed 1:"), "{md}");

    // A rerun trains nothing and leaves the rows as they were.
    let o = unas_in(d, &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("0 trainings"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("study/recipes.csv")).unwrap(),
        csv
    );

    // Other settings into the same folder: one clear error, exit 2, nothing written.
    let mut other = args.to_vec();
    other.extend(["--steps", "5"]);
    let o = unas_in(d, &other);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("settings"), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(d.join("study/recipes.csv")).unwrap(),
        csv
    );

    // A claim outside the scored step counts is refused.
    let mut bad = args.to_vec();
    bad[9] = "30,50";
    let o = unas_in(d, &bad);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--claim"), "{}", text(&o.stderr));
}
