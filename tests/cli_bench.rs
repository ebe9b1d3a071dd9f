//! `unas bench train`: one training step timed per phase, JSON output, clear input errors.

use std::process::Command;

fn unas(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run unas")
}

#[test]
fn bench_train_times_each_phase_with_finite_losses() {
    let o = unas(&[
        "bench",
        "train",
        "--arch",
        "tiny",
        "--batch",
        "2",
        "--latent",
        "8",
        "--text-len",
        "4",
        "--warmup",
        "1",
        "--repeats",
        "2",
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["threads"], 2);
    for phase in ["forward", "backward", "optimizer", "step"] {
        let samples = v["burn"][phase]["samples_ms"].as_array().expect(phase);
        assert_eq!(samples.len(), 2, "{phase}: one sample per timed step");
        assert!(samples.iter().all(|s| s.as_f64().is_some_and(|x| x > 0.0)));
    }
    let step = v["burn"]["step"]["median_ms"].as_f64().expect("step");
    let parts: f64 = ["forward", "backward", "optimizer"]
        .iter()
        .map(|p| v["burn"][p]["median_ms"].as_f64().expect("phase"))
        .sum();
    // The step is the phases plus the small gaps between them (medians need not add up
    // exactly, but the step cannot be much shorter than its parts).
    assert!(step > 0.5 * parts, "step {step} ms vs phases {parts} ms");
    let losses: Vec<f64> = v["burn"]["losses"]
        .as_array()
        .expect("losses")
        .iter()
        .map(|l| l.as_f64().expect("finite loss"))
        .collect();
    assert_eq!(losses.len(), 3, "warm-up and timed steps");
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0));
}

#[test]
fn bench_train_rejects_bad_input_with_exit_2() {
    let o = unas(&["bench", "train", "--arch", "tiny", "--batch", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 1"));
    let o = unas(&["bench", "train", "--arch", "no-such-arch"]);
    assert_eq!(o.status.code(), Some(2));
    let o = unas(&["bench", "train", "--arch", "tiny", "--threads", "0"]);
    assert_eq!(o.status.code(), Some(2));
}
