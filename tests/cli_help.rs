//! Every command's `--help` works: clap checks its argument definitions (unique names across
//! flattened groups, …) when a command is built, in debug builds, and panics on a clash.

use std::process::Command;

#[test]
fn every_command_prints_its_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["space", "show"],
        &["space", "sample"],
        &["space", "stats"],
        &["space", "export"],
        &["bench", "unet"],
        &["bench", "train"],
        &["latency"],
        &["profile"],
        &["generate"],
        &["quality"],
        &["quality", "calibrate"],
        &["quality", "recipes"],
        &["supernet", "list"],
        &["supernet", "train"],
        &["supernet", "score"],
        &["train"],
        &["search"],
        &["search", "benchmark"],
        &["report"],
        &["export"],
        &["worker"],
        &["store", "copy"],
    ];
    for c in commands {
        let o = Command::new(env!("CARGO_BIN_EXE_unas"))
            .args(*c)
            .arg("--help")
            .output()
            .expect("run unas");
        assert!(
            o.status.success(),
            "unas {} --help: {}",
            c.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
