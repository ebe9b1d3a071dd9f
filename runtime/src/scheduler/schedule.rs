//! Noise-schedule math shared by the schedulers, in f64, following diffusers (and numpy's
//! `linspace`, `arange`, `interp` and round-half-to-even) step for step.

use crate::scheduler::config::{BetaSchedule, FinalSigmas, SchedulerConfig, TimestepSpacing};

/// numpy's `linspace(start, stop, num)` (endpoint included).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    match num {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (num - 1) as f64;
            let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
            v[num - 1] = stop;
            v
        }
    }
}

/// numpy's `arange(start, stop, step)` for a float step.
pub fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil().max(0.0) as usize;
    let delta = (start + step) - start;
    (0..len).map(|i| start + i as f64 * delta).collect()
}

/// The timesteps of `n` sampling steps out of `train`, as diffusers' `DDIMScheduler` and
/// `EulerDiscreteScheduler.set_timesteps` space them (integer-valued, highest first).
pub fn spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    n: usize,
    offset: usize,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => linspace(0.0, (train - 1) as f64, n)
            .into_iter()
            .rev()
            .map(round)
            .collect(),
        TimestepSpacing::Leading => {
            let ratio = train / n;
            (0..n).rev().map(|i| (i * ratio + offset) as f64).collect()
        }
        TimestepSpacing::Trailing => arange(train as f64, 0.0, -(train as f64 / n as f64))
            .into_iter()
            .map(|t| round(t) - 1.0)
            .collect(),
    }
}

/// The timesteps of `n` sampling steps as diffusers' `DPMSolverMultistepScheduler.set_timesteps`
/// spaces them: over the first `last` training timesteps (those whose λ is not clipped),
/// linspace and leading over `n + 1` points with the last dropped (so never timestep 0);
/// trailing as DDIM's, counted down from `last`.
pub fn dpm_spaced_timesteps(
    spacing: TimestepSpacing,
    train: usize,
    last: usize,
    n: usize,
    offset: usize,
) -> Vec<f64> {
    match spacing {
        TimestepSpacing::Linspace => {
            let mut t: Vec<f64> = linspace(0.0, last as f64 - 1.0, n + 1)
                .into_iter()
                .map(round)
                .rev()
                .collect();
            t.pop();
            t
        }
        TimestepSpacing::Leading => {
            let ratio = last / (n + 1);
            (1..=n).rev().map(|i| (i * ratio + offset) as f64).collect()
        }
        TimestepSpacing::Trailing => arange(last as f64, 0.0, -(train as f64 / n as f64))
            .into_iter()
            .map(|t| round(t) - 1.0)
            .collect(),
    }
}

/// numpy's `interp(x, arange(len(ys)), ys)`.
pub fn interp_index(x: f64, ys: &[f64]) -> f64 {
    let last = ys.len() - 1;
    if x <= 0.0 {
        return ys[0];
    }
    if x >= last as f64 {
        return ys[last];
    }
    let lo = x.floor() as usize;
    let w = x - lo as f64;
    if w == 0.0 {
        ys[lo]
    } else {
        ys[lo] + (ys[lo + 1] - ys[lo]) * w
    }
}

/// The training betas of a configuration (after zero-SNR rescaling when asked).
pub fn betas(config: &SchedulerConfig) -> Vec<f64> {
    let t = config.num_train_timesteps;
    let betas = if let Some(b) = &config.trained_betas {
        b.clone()
    } else {
        match config.beta_schedule {
            BetaSchedule::Linear => linspace(config.beta_start, config.beta_end, t),
            BetaSchedule::ScaledLinear => {
                linspace(config.beta_start.sqrt(), config.beta_end.sqrt(), t)
                    .into_iter()
                    .map(|b| b * b)
                    .collect()
            }
            BetaSchedule::SquaredCosCapV2 => cosine_betas(t, 0.999),
        }
    };
    if config.rescale_betas_zero_snr {
        rescale_zero_terminal_snr(&betas)
    } else {
        betas
    }
}

/// Cosine betas: β_i = min(1 − f((i+1)/T) / f(i/T), max_beta) with floating-point i/T and
/// f(t) = cos²((t + 0.008) / 1.008 · π/2).
pub fn cosine_betas(t: usize, max_beta: f64) -> Vec<f64> {
    let f = |x: f64| {
        ((x + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
            .cos()
            .powi(2)
    };
    (0..t)
        .map(|i| {
            let t1 = i as f64 / t as f64;
            let t2 = (i + 1) as f64 / t as f64;
            (1.0 - f(t2) / f(t1)).min(max_beta)
        })
        .collect()
}

/// Zero terminal SNR (Lin et al. 2023, Algorithm 1): shifts and scales √ᾱ so that √ᾱ_T = 0
/// while √ᾱ_0 is kept, then returns the betas of the new ᾱ.
pub fn rescale_zero_terminal_snr(betas: &[f64]) -> Vec<f64> {
    let acp = cumprod_alphas(betas);
    let s: Vec<f64> = acp.iter().map(|a| a.sqrt()).collect();
    let (s0, st) = (s[0], s[s.len() - 1]);
    let abar: Vec<f64> = s
        .iter()
        .map(|x| {
            let y = (x - st) * (s0 / (s0 - st));
            y * y
        })
        .collect();
    let mut out = Vec::with_capacity(betas.len());
    out.push(1.0 - abar[0]);
    for i in 1..abar.len() {
        out.push(1.0 - abar[i] / abar[i - 1]);
    }
    out
}

/// ᾱ_t = Π_{s≤t}(1 − β_s).
pub fn cumprod_alphas(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0;
    betas
        .iter()
        .map(|b| {
            acc *= 1.0 - b;
            acc
        })
        .collect()
}

/// σ_t = √((1 − ᾱ_t) / ᾱ_t) for every training step.
pub fn sigmas(alphas_cumprod: &[f64]) -> Vec<f64> {
    alphas_cumprod
        .iter()
        .map(|a| ((1.0 - a) / a).sqrt())
        .collect()
}

/// The sigma of each of `timesteps` (interpolated in the training sigmas `train_sigmas`,
/// as diffusers' `np.interp(timesteps, arange(len), sigmas)`), then the final sigma after the
/// last step (`final_sigmas_type`: 0, or the smallest training sigma).
pub fn step_sigmas(timesteps: &[f64], train_sigmas: &[f64], last: FinalSigmas) -> Vec<f64> {
    let mut sig: Vec<f64> = timesteps
        .iter()
        .map(|&t| interp_index(t, train_sigmas))
        .collect();
    sig.push(match last {
        FinalSigmas::Zero => 0.0,
        FinalSigmas::SigmaMin => train_sigmas[0],
    });
    sig
}

/// Round half to even, as numpy's `round`.
pub fn round(x: f64) -> f64 {
    x.round_ties_even()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_zero_snr_endpoints() {
        let config = SchedulerConfig {
            beta_schedule: BetaSchedule::SquaredCosCapV2,
            rescale_betas_zero_snr: true,
            ..SchedulerConfig::default()
        };
        let acp = cumprod_alphas(&betas(&config));
        // diffusers' `betas_for_alpha_bar` (cosine) + `rescale_zero_terminal_snr` (Lin et al.
        // 2024, Alg. 1): ᾱ_0 ≈ 0.99995872, ᾱ_999 = 0.
        assert!((acp[0] - 0.999_958_72).abs() < 1e-8, "{}", acp[0]);
        assert_eq!(acp[999], 0.0);
        // Floating-point i/T: the integer-division bug would give β_0 = 1 − f(0)/f(0) = 0.
        let plain = cosine_betas(1000, 0.999);
        assert!(plain[0] > 0.0 && plain[999] == 0.999);
    }

    #[test]
    fn numpy_helpers() {
        assert_eq!(linspace(0.0, 999.0, 4), vec![0.0, 333.0, 666.0, 999.0]);
        assert_eq!(
            arange(1000.0, 0.0, -250.0),
            vec![1000.0, 750.0, 500.0, 250.0]
        );
        assert_eq!(round(62.5), 62.0);
        assert_eq!(round(937.5), 938.0);
        assert_eq!(interp_index(1.5, &[0.0, 2.0, 4.0]), 3.0);
    }
}
