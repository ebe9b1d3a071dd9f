//! CLI-level tests of `unas latency` and `unas profile`.

mod common;

use common::ONE_FAMILY;
use std::process::{Command, Output};

fn unas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run unas")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a10_profile_prints_blocks_total_and_pipeline() {
    let o = unas(&[
        "latency",
        "--arch",
        "decidiffusion",
        "--model",
        "profile:a10",
        "--pipeline-steps",
        "50",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let s = text(&o.stdout);
    assert!(s.contains("mid_block.modules_list.0"), "{s}");
    assert!(s.contains("total:") && s.contains("ms per step"), "{s}");
    assert!(s.contains("pipeline:") && s.contains("at 50 steps"), "{s}");
}

#[test]
fn bad_models_and_settings_exit_2() {
    for args in [
        vec!["latency", "--arch", "sd15", "--model", "nonsense"],
        vec![
            "latency",
            "--arch",
            "sd15",
            "--model",
            "lut:/nonexistent.lut.toml",
        ],
        vec![
            "latency",
            "--arch",
            "sd15",
            "--model",
            "profile:nonexistent",
        ],
        vec!["latency", "--arch", "sd15", "--dtype", "f16"],
        vec![
            "latency",
            "--arch",
            "sd15",
            "--model",
            "profile:a10",
            "--latent",
            "60",
        ],
        vec!["latency"],
    ] {
        let o = unas(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(!text(&o.stderr).contains("panicked"), "{args:?}");
    }
}

/// A table covers its space; an architecture from outside it is an error naming the missing
/// variant, never a silent zero.
#[test]
fn lookup_tables_cover_their_space_and_name_missing_variants() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, ONE_FAMILY).unwrap();
    let lut = dir.path().join("t.lut.toml");
    let o = unas(&[
        "profile",
        "--space",
        space.to_str().unwrap(),
        "--out",
        lut.to_str().unwrap(),
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--overhead-archs",
        "1",
        "--max-noise",
        "0",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = std::fs::read_to_string(&lut).unwrap();
    for field in [
        "device =",
        "backend =",
        "burn_version = \"0.21.0\"",
        "date =",
        "latent = 8",
        "statistic = \"lower-quartile\"",
        "threads =",
        "load =",
    ] {
        assert!(table.contains(field), "table lacks {field}");
    }
    // Validated against end-to-end measurements (interleaved, the table's statistic).
    let o = unas(&[
        "latency",
        "validate",
        "--space",
        space.to_str().unwrap(),
        "--lut",
        lut.to_str().unwrap(),
        "-n",
        "3",
        "--warmup",
        "0",
        "--repeats",
        "2",
        "--max-noise",
        "0",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("±10 %:") && out.contains("RMSPE"), "{out}");
    // An architecture of the space: predicted.
    let arch = dir.path().join("a.toml");
    let o = unas(&[
        "space",
        "sample",
        "--space",
        space.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    std::fs::write(&arch, &o.stdout).unwrap();
    let o = unas(&[
        "latency",
        "--arch",
        arch.to_str().unwrap(),
        "--model",
        &format!("lut:{}", lut.display()),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains("total:"));
    // The tiny preset has other widths: the missing variant is named.
    let o = unas(&[
        "latency",
        "--arch",
        "tiny",
        "--model",
        &format!("lut:{}", lut.display()),
        "--latent",
        "8",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("no entry for block variant"), "{err}");
}

/// A host noisier than the limit is refused with the measured levels (exit 1), writing
/// nothing; a CUDA device in a build without the `cuda` feature is bad input naming it.
#[test]
fn profile_refuses_a_noisy_host_and_a_missing_cuda() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, ONE_FAMILY).unwrap();
    let lut = dir.path().join("t.lut.toml");
    let args = |extra: &[&'static str]| {
        let mut v = vec![
            "profile".to_string(),
            "--space".into(),
            space.display().to_string(),
            "--out".into(),
            lut.display().to_string(),
            "--repeats".into(),
            "1".into(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    // No real host has a spread below a millionth of a percent.
    let a = args(&["--max-noise", "0.00000001"]);
    let o = unas(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("too noisy to time") && err.contains("readings"),
        "{err}"
    );
    assert!(!lut.exists());
    if !cfg!(feature = "cuda") {
        let a = args(&["--device", "cuda"]);
        let o = unas(&a.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("--features cuda"),
            "{}",
            text(&o.stderr)
        );
    }
}
