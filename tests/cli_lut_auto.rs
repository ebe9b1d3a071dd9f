//! `latency.model = "lut:auto"` on a machine with no table yet (a private cache): the search
//! profiles this machine's table for its space, checks it end to end, caches it, and the
//! report names it; a second search uses the cached table.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::QUALITY;

fn unas_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .current_dir(dir)
        .env("UNAS_CACHE_DIR", dir.join(".unas-cache"))
        .output()
        .expect("run unas")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A two-stage space small enough to profile in seconds (8x8 latents).
const SPACE: &str = r#"
name = "auto-space"
[stem]
base_channels = 32
time_embed_dim = 64
cross_attention_dim = 32
heads = 2
norm_groups = 8
[knobs]
stages = [2]
layouts = ["flexible"]
mid_resnets = [1, 2]
mid_attentions = [0, 1]
[[stage]]
out_channels = [32]
down_resnets = [1, 2]
down_attentions = [0, 1]
up_attentions = [0, 1]
[[stage]]
out_channels = [32]
down_resnets = [1]
down_attentions = [0, 1]
up_attentions = [0, 2]
[constraints]
latent = 8
batch = 1
text_len = 4
"#;

#[test]
fn lut_auto_profiles_this_machine_once_and_the_report_names_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("space.toml"), SPACE).unwrap();
    let study = format!(
        r#"
name = "auto"
space = "space.toml"
trials = 2
seed = 1

[controller]
kind = "random"

[latency]
model = "lut:auto"
budget_ms = 10000.0
latent = 8
batch = 1
text_len = 4
dtype = "f32"
{QUALITY}"#
    );
    std::fs::write(d.join("auto.toml"), study).unwrap();
    let o = unas_in(
        d,
        &[
            "search",
            "--config",
            "auto.toml",
            "--out",
            "run1",
            "--quiet",
        ],
    );
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("profiling this machine's lookup table"),
        "{err}"
    );
    assert!(err.contains("check:"), "{err}");
    let tables: Vec<_> = std::fs::read_dir(d.join(".unas-cache/lut"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tables.len(), 1, "{tables:?}");
    let table = std::fs::read_to_string(&tables[0]).unwrap();
    for field in [
        "statistic = \"lower-quartile\"",
        "noise =",
        "validation =",
        "threads =",
    ] {
        assert!(table.contains(field), "{field} not in {table}");
    }
    let report = std::fs::read_to_string(d.join("run1/report.md")).unwrap();
    let name = tables[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        report.contains("lut:auto → lut:") && report.contains(&name) && report.contains("check:"),
        "the report does not name the table {name}: {report}"
    );
    // The same machine again: the cached table, checked, not profiled anew (unless its check
    // fails on this host now, which the log would say).
    let o = unas_in(
        d,
        &[
            "search",
            "--config",
            "auto.toml",
            "--out",
            "run2",
            "--quiet",
        ],
    );
    let err = text(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("using this machine's lookup table"), "{err}");
    assert!(
        !err.contains("profiling this machine's") || err.contains("profiling it again"),
        "{err}"
    );
}
