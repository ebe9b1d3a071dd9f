//! Image degradations shared by the quality tests.

use unas_space::rng::Rng;

/// Adds Gaussian noise of standard deviation `sigma` (clamped to [0, 1]).
pub fn noisy(imgs: &[Vec<f32>], sigma: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::seed(seed);
    imgs.iter()
        .map(|img| {
            img.iter()
                .map(|&v| {
                    let (u, w) = (rng.uniform().max(1e-300), rng.uniform());
                    let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * w).cos();
                    (v as f64 + sigma * z).clamp(0.0, 1.0) as f32
                })
                .collect()
        })
        .collect()
}

/// Box blur of radius `r` of `[3, size, size]` images (edges average the pixels inside).
pub fn blurred(imgs: &[Vec<f32>], size: usize, r: usize) -> Vec<Vec<f32>> {
    let n = size as isize;
    let r = r as isize;
    imgs.iter()
        .map(|img| {
            let mut out = vec![0.0f32; img.len()];
            for c in 0..3 {
                let plane = &img[c * size * size..(c + 1) * size * size];
                for y in 0..n {
                    for x in 0..n {
                        let (mut sum, mut cnt) = (0.0, 0.0);
                        for dy in -r..=r {
                            for dx in -r..=r {
                                let (yy, xx) = (y + dy, x + dx);
                                if (0..n).contains(&yy) && (0..n).contains(&xx) {
                                    sum += plane[(yy * n + xx) as usize];
                                    cnt += 1.0;
                                }
                            }
                        }
                        out[c * size * size + (y * n + x) as usize] = sum / cnt;
                    }
                }
            }
            out
        })
        .collect()
}
