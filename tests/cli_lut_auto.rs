//! `latency.model = "lut:auto"` on a machine with no table yet (a private cache): the search
//! profiles this machine's table for its space, checks it end to end, caches it, and the
//! report names it; a second search uses the cached table.

mod common;

use common::{text, unas_in, ONE_FAMILY, QUALITY};

#[test]
fn lut_auto_profiles_this_machine_once_and_the_report_names_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("space.toml"), ONE_FAMILY).unwrap();
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
