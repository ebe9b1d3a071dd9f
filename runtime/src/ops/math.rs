//! Branch-free f32 math for the CPU kernels: written so that LLVM vectorises the loops that
//! call it (no libm calls, no data-dependent branches).

/// exp(x) with a relative error below 2e-7 (Cephes' `expf` polynomial after a round-to-nearest
/// range reduction). Inputs are clamped to [-87.3, 88.3]: below, the result is ~1e-38 instead
/// of 0; above, it saturates at ~2e38.
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients as published
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds x·log2(e) to an integer n held in the low mantissa bits
    // (|n| < 2^22), readable with a bit cast: no float-to-int conversion, so it vectorises.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * z + r + 1.0;
    // 2^n with n in [-126, 127]: a normal float's exponent field (wrapping ops: no overflow
    // checks, which would stop vectorisation in debug-assertion builds).
    y * f32::from_bits((n_int.wrapping_add(127) << 23) as u32)
}

/// SiLU: x · sigmoid(x).
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// erf(x) with an absolute error below 2e-7 (Numerical Recipes' `erfcc` Chebyshev fit).
#[inline(always)]
#[allow(clippy::excessive_precision)] // coefficients as published
pub fn erf(x: f32) -> f32 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_2
        + t * (1.000_023_7
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * exp(poly);
    (1.0 - erfc).copysign(x)
}

/// Exact (erf) GELU: x · Φ(x).
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = ((exp(x) as f64 - (x as f64).exp()) / (x as f64).exp()).abs();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert!(exp(-200.0) < 1e-37 && exp(-200.0) >= 0.0);
    }

    #[test]
    fn erf_and_gelu_are_accurate() {
        // Reference erf from a high-order series / continued fraction in f64.
        fn erf64(x: f64) -> f64 {
            // Abramowitz-Stegun 7.1.5 series (converges for all x; fine for |x| <= 6).
            let mut sum = x;
            let mut term = x;
            let mut n = 0.0;
            while term.abs() > 1e-17 * sum.abs().max(1e-300) {
                n += 1.0;
                term *= -x * x / n;
                sum += term / (2.0 * n + 1.0);
                if n > 400.0 {
                    break;
                }
            }
            2.0 / std::f64::consts::PI.sqrt() * sum
        }
        let mut x = -5.0f32;
        while x < 5.0 {
            let e = (erf(x) as f64 - erf64(x as f64)).abs();
            assert!(e < 3e-7, "erf({x}) off by {e}");
            let g = 0.5 * x as f64 * (1.0 + erf64(x as f64 / std::f64::consts::SQRT_2));
            assert!((gelu(x) as f64 - g).abs() < 1e-6, "gelu({x})");
            x += 0.01;
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
    }
}
