//! The shipped A10 profile against the published DeciDiffusion model-card figures
//! (Deci's DeciDiffusion 1.0 model card: NVIDIA A10, fp16, seconds per 512 px image): fitted on
//! SD1.5 alone, checked on U-Net-NAS.

use unas_evaluator::latency::calibrate::fit_matmul_efficiency;
use unas_evaluator::latency::profile::DeviceProfile;
use unas_evaluator::latency::{LatencyModel, LatencySetting};
use unas_space::preset;

const SD15_50_STEPS_S: f64 = 2.95;
const NAS_50_STEPS_S: f64 = 2.11;

#[test]
fn shipped_a10_efficiency_is_the_sd15_fit() {
    let profile = DeviceProfile::load("a10").unwrap();
    let fitted = fit_matmul_efficiency(
        &profile,
        &preset("sd15"),
        &LatencySetting::default(),
        50,
        SD15_50_STEPS_S,
    )
    .unwrap();
    // The shipped value is the fit, rounded to 4 decimals.
    assert!(
        (fitted - profile.efficiency.matmul).abs() < 1e-4,
        "refit {fitted:.5} != shipped {}",
        profile.efficiency.matmul
    );
}

#[test]
fn a10_predicts_the_published_sd15_time_and_the_held_out_ratio() {
    let p = DeviceProfile::load("a10").unwrap();
    let s = LatencySetting::default();
    let sd = preset("sd15");
    let nas = preset("decidiffusion");
    let sd_pipe = p.pipeline_seconds(&sd, &s, 50).unwrap();
    assert!(
        (sd_pipe / SD15_50_STEPS_S - 1.0).abs() <= 0.20,
        "SD1.5 50-step pipeline predicted {sd_pipe:.3} s vs 2.95 s"
    );
    let ratio = p.predict(&sd, &s).unwrap().total_ms / p.predict(&nas, &s).unwrap().total_ms;
    assert!(
        (ratio - 1.40).abs() <= 0.07,
        "per-step ratio SD1.5 / U-Net-NAS predicted {ratio:.3}, published 1.40"
    );
    let nas_pipe = p.pipeline_seconds(&nas, &s, 50).unwrap();
    eprintln!(
        "A10: SD1.5 {sd_pipe:.3} s, U-Net-NAS {nas_pipe:.3} s (published {NAS_50_STEPS_S}), ratio {ratio:.3}"
    );
}

#[test]
fn per_block_latencies_sum_to_the_total() {
    let p = DeviceProfile::load("h100").unwrap();
    let r = p
        .predict(&preset("decidiffusion"), &LatencySetting::default())
        .unwrap();
    let sum: f64 = r.blocks.iter().map(|b| b.ms).sum();
    assert!((sum - r.total_ms).abs() < 1e-9);
    assert!(r.blocks.iter().all(|b| b.ms > 0.0));
}
