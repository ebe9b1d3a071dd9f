//! Fitting a device profile's matmul efficiency to one published pipeline time.

use unas_space::UNetArch;

use super::profile::DeviceProfile;
use super::LatencySetting;
use crate::EvalError;

/// Finds `efficiency.matmul` such that the profile predicts `target_s` seconds per image for
/// `arch`'s `steps`-step pipeline at `setting` (bisection; the prediction falls monotonically
/// as the efficiency rises). Every other field of the profile is left as it is.
pub fn fit_matmul_efficiency(
    profile: &DeviceProfile,
    arch: &UNetArch,
    setting: &LatencySetting,
    steps: usize,
    target_s: f64,
) -> Result<f64, EvalError> {
    let predict = |eff: f64| -> Result<f64, EvalError> {
        let mut p = profile.clone();
        p.efficiency.matmul = eff;
        p.pipeline_seconds(arch, setting, steps)
    };
    let (mut lo, mut hi) = (1e-3, 1.0);
    if predict(hi)? > target_s {
        return Err(EvalError::Unsupported(format!(
            "even at 100% matmul efficiency the profile predicts {:.3} s > {target_s} s: the \
             memory or launch terms alone exceed the target",
            predict(hi)?
        )));
    }
    if predict(lo)? < target_s {
        return Err(EvalError::Unsupported(format!(
            "the target {target_s} s is slower than the profile predicts at 0.1% efficiency"
        )));
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if predict(mid)? > target_s {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}
