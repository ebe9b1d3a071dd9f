//! Fréchet distance and KID against analytic cases and sampling behaviour.

use nalgebra::{DMatrix, DVector};
use unas_evaluator::quality::metrics::{frechet_distance, kid, Features, GaussianStats};
use unas_space::rng::Rng;

fn stats(mean: &[f64], cov: &[f64]) -> GaussianStats {
    let d = mean.len();
    GaussianStats {
        mean: DVector::from_column_slice(mean),
        cov: DMatrix::from_row_slice(d, d, cov),
        n: 1000,
    }
}

#[test]
fn frechet_distance_of_diagonal_gaussians_is_analytic() {
    // Commuting covariances: FD = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2.
    let a: [f64; 4] = [4.0, 1.0, 0.25, 9.0];
    let b: [f64; 4] = [1.0, 2.0, 0.25, 16.0];
    let mut ca = vec![0.0; 16];
    let mut cb = vec![0.0; 16];
    for i in 0..4 {
        ca[i * 5] = a[i];
        cb[i * 5] = b[i];
    }
    let m1 = [0.5, -1.0, 2.0, 0.0];
    let m2 = [0.0, 1.0, 2.0, 3.0];
    let expected: f64 = m1
        .iter()
        .zip(&m2)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        + a.iter()
            .zip(&b)
            .map(|(x, y)| (x.sqrt() - y.sqrt()).powi(2))
            .sum::<f64>();
    let fd = frechet_distance(&stats(&m1, &ca), &stats(&m2, &cb)).unwrap();
    assert!((fd - expected).abs() < 1e-6, "{fd} vs {expected}");
}

#[test]
fn frechet_distance_of_non_commuting_2x2_gaussians_is_analytic() {
    // For 2x2 SPD M = S1 S2 (positive eigenvalues): tr(sqrt(M)) = sqrt(tr M + 2 sqrt(det M)).
    let s1: [f64; 4] = [2.0, 0.6, 0.6, 1.0];
    let s2: [f64; 4] = [1.0, -0.4, -0.4, 3.0];
    let m = DMatrix::from_row_slice(2, 2, &s1) * DMatrix::from_row_slice(2, 2, &s2);
    let tr_sqrt = (m.trace() + 2.0 * m.determinant().sqrt()).sqrt();
    let expected = 1.0 + 4.0 + (3.0 + 4.0) - 2.0 * tr_sqrt;
    let fd = frechet_distance(&stats(&[1.0, 0.0], &s1), &stats(&[0.0, 2.0], &s2)).unwrap();
    assert!((fd - expected).abs() < 1e-6, "{fd} vs {expected}");
    // Symmetric, and zero against itself.
    let back = frechet_distance(&stats(&[0.0, 2.0], &s2), &stats(&[1.0, 0.0], &s1)).unwrap();
    assert!((fd - back).abs() < 1e-9);
    let same = frechet_distance(&stats(&[1.0, 0.0], &s1), &stats(&[1.0, 0.0], &s1)).unwrap();
    assert!(same.abs() < 1e-9);
}

fn gaussian(rng: &mut Rng, n: usize, d: usize, shift: f32) -> Features {
    let mut data = Vec::with_capacity(n * d);
    for _ in 0..n * d {
        // Box-Muller.
        let (u, v) = (rng.uniform().max(1e-300), rng.uniform());
        let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
        data.push(z as f32 + shift);
    }
    Features::new(data, d).unwrap()
}

#[test]
fn sample_covariance_uses_n_minus_1() {
    let f = Features::new(vec![1.0, 2.0, 3.0, 6.0], 1).unwrap();
    let s = f.stats().unwrap();
    // mean 3, squared deviations 4 + 1 + 0 + 9 = 14, / 3.
    assert!((s.mean[0] - 3.0).abs() < 1e-12);
    assert!((s.cov[(0, 0)] - 14.0 / 3.0).abs() < 1e-12);
}

#[test]
fn kid_of_one_distribution_is_zero_within_its_error() {
    let mut rng = Rng::seed(1);
    let a = gaussian(&mut rng, 600, 16, 0.0);
    let b = gaussian(&mut rng, 600, 16, 0.0);
    let k = kid(&a, &b, 50, 200, 7).unwrap();
    assert!(k.mean.abs() <= 2.0 * k.std, "KID {} +- {}", k.mean, k.std);
    // A shifted distribution is clearly apart.
    let c = gaussian(&mut rng, 600, 16, 0.5);
    let far = kid(&a, &c, 50, 200, 7).unwrap();
    assert!(
        far.mean > 5.0 * far.std && far.mean > 10.0 * k.mean.abs(),
        "{far:?}"
    );
    // Seeded: the same call gives the same estimate.
    assert_eq!(kid(&a, &b, 50, 200, 7).unwrap(), k);
}

#[test]
fn frechet_distance_grows_with_the_shift_between_samples() {
    let mut rng = Rng::seed(2);
    let base = gaussian(&mut rng, 2000, 8, 0.0).stats().unwrap();
    let mut last = -1.0;
    for shift in [0.0, 0.25, 0.5, 1.0] {
        let other = gaussian(&mut rng, 2000, 8, shift).stats().unwrap();
        let fd = frechet_distance(&base, &other).unwrap();
        assert!(fd > last, "FD {fd} at shift {shift} not above {last}");
        // Mean term dominates: 8 * shift^2, plus small sampling noise.
        assert!((fd - 8.0 * (shift as f64).powi(2)).abs() < 0.1, "{fd}");
        last = fd;
    }
}
