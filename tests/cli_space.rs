//! CLI-level tests of `unas space …`: totals, reproducible samples, and one clear error (file,
//! line, field; exit code 2; no panic) for each kind of malformed input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn unas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run unas")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn show_prints_exact_totals_for_both_presets() {
    let o = unas(&["space", "show", "configs/archs/sd15.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("total parameters: 859,520,964"));
    let o = unas(&["space", "show", "configs/archs/decidiffusion.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // U-Net-NAS from the same counter; with CLIP-L text (123,060,480) and the VAE (83,653,863)
    // this is the blog's "1.02B" (SD1.5: 1.07B).
    assert!(stdout(&o).contains("total parameters: 814,746,884"));
}

#[test]
fn sampling_is_reproducible_and_samples_load_back() {
    let a = unas(&[
        "space", "sample", "--space", "tiny", "-n", "5", "--seed", "4",
    ]);
    let b = unas(&[
        "space", "sample", "--space", "tiny", "-n", "5", "--seed", "4",
    ]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(stdout(&a), stdout(&b));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = unas(&[
        "space",
        "sample",
        "--space",
        "configs/spaces/default.toml",
        "-n",
        "6",
        "--seed",
        "4",
        "--out",
        out,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 6);
    for f in files {
        let o = unas(&["space", "show", f.to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        // The file is named by the architecture's id.
        let stem = f.file_stem().unwrap().to_str().unwrap();
        assert_eq!(v["hash"], stem);
        assert!(v["params"].as_u64().unwrap() > 0);
    }
}

#[test]
fn stats_reports_size_and_ranges() {
    let o = unas(&[
        "space", "stats", "--space", "tiny", "-n", "50", "--latent", "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("distinct valid architectures"), "{s}");
    assert!(s.contains("params:       min"), "{s}");
}

/// Writes `text` to a file in a fresh directory and runs `space show` on it; expects exit code
/// 2 and a single error line naming the file, the line and the field.
fn expect_bad(name: &str, text: &str, line: usize, field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let o = unas(&["space", "show", path.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{name}: {err}");
    assert!(!err.contains("panicked"), "{name}: {err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{name}: one error line: {err}"
    );
    let want = format!("{}:{line}:", path.display());
    assert!(err.starts_with(&format!("error: {want}")), "{name}: {err}");
    assert!(err.contains(&format!("field `{field}`")), "{name}: {err}");
    assert!(stdout(&o).is_empty(), "{name}: printed a table anyway");
}

fn preset_text(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/archs/{name}.toml")),
    )
    .unwrap()
}

fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with(needle))
        .nth(nth)
        .map(|(i, _)| i + 1)
        .unwrap()
}

#[test]
fn malformed_files_give_one_located_error() {
    let deci = preset_text("decidiffusion");

    // Bad type: the second up stage's ResNet count as a string.
    let bad = deci.replacen("resnets = 3\n", "resnets = \"three\"\n", 1);
    let line = line_of(&bad, "resnets = \"three\"", 0);
    expect_bad("badtype.toml", &bad, line, "up[1].resnets");

    // Unknown field in the first up stage.
    let bad = deci.replacen("attentions = 6\n", "attentions = 6\nkernel = 3\n", 1);
    let line = line_of(&bad, "kernel", 0);
    expect_bad("unknown.toml", &bad, line, "up[0].kernel");

    // Invalid architecture: the last down stage gets a second ResNet, so its mirrored up stage
    // (2 ResNets) no longer consumes the skips the down path produced.
    let bad = deci.replacen("resnets = 1\n", "resnets = 2\n", 1);
    let line = line_of(&bad, "resnets", 4); // up[0]'s `resnets`
    expect_bad("invalid.toml", &bad, line, "up[0].resnets");

    // Heads that do not divide a stage's width.
    let bad = deci.replace("heads = 8 ", "heads = 7 ");
    let line = line_of(&bad, "out_channels = 640", 0);
    expect_bad("heads.toml", &bad, line, "down[1].out_channels");

    // Broken TOML syntax.
    expect_bad("syntax.toml", "name = \"x\"\nlayout = [\n", 3, "<document>");

    // A missing required field.
    let bad = deci.replace("base_channels = 320\n", "");
    let line = line_of(&bad, "[stem]", 0);
    expect_bad("missing.toml", &bad, line, "stem");
}

#[test]
fn bad_names_and_queries_exit_2() {
    let o = unas(&["space", "show", "no-such-preset"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown preset"));
    let o = unas(&["space", "show", "sd15", "--latent", "60"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not divisible"));
    let o = unas(&["space", "show", "/nonexistent/arch.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent/arch.toml"));
    let o = unas(&["space", "stats", "--space", "configs/archs/sd15.toml"]);
    assert_eq!(o.status.code(), Some(2), "an arch file is not a space");
    assert!(!stderr(&o).contains("panicked"));
}
