//! The shapes feature extractor learns the attributes, and Fréchet distance on its features
//! ranks a degradation ladder (noise, blur, dropped colour classes) monotonically.

use unas_evaluator::quality::data::shapes::Shapes;
use unas_evaluator::quality::data::Dataset;
use unas_evaluator::quality::features::{accuracy, FeatureExtractor, FeatureTraining};
use unas_evaluator::quality::metrics::frechet_distance;
use unas_space::rng::Rng;

const SIZE: usize = 32;

fn images(ds: &dyn Dataset, n: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| ds.get(i).unwrap().pixels).collect()
}

fn noisy(imgs: &[Vec<f32>], sigma: f64, seed: u64) -> Vec<Vec<f32>> {
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

fn blurred(imgs: &[Vec<f32>], r: usize) -> Vec<Vec<f32>> {
    let n = SIZE as isize;
    let r = r as isize;
    imgs.iter()
        .map(|img| {
            let mut out = vec![0.0f32; img.len()];
            for c in 0..3 {
                let plane = &img[c * SIZE * SIZE..(c + 1) * SIZE * SIZE];
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
                        out[c * SIZE * SIZE + (y * n + x) as usize] = sum / cnt;
                    }
                }
            }
            out
        })
        .collect()
}

#[test]
fn extractor_learns_attributes_and_fd_ranks_a_degradation_ladder() {
    let train = Shapes::new(11, 3000, SIZE);
    let cfg = FeatureTraining {
        images: 3000,
        epochs: 3,
        lr: 3e-3,
        ..Default::default()
    };
    let ex = FeatureExtractor::train(&train, &cfg, &mut |_, _, _| {}).unwrap();

    // Held-out accuracy well above chance on every attribute
    // (chance: shape 1/4, colour 1/6, size 1/2, position 1/5, background 1/3).
    let held_out = Shapes::new(12, 400, SIZE);
    let acc = accuracy(&ex, &held_out, 0..400).unwrap();
    let chance = [0.25, 1.0 / 6.0, 0.5, 0.2, 1.0 / 3.0];
    for (a, c) in acc.iter().zip(chance) {
        assert!(*a > c + 0.15, "accuracy {acc:?}");
    }

    let stats = |imgs: &[Vec<f32>]| ex.features(imgs, SIZE).unwrap().stats().unwrap();
    let reference = stats(&images(&Shapes::new(20, 500, SIZE), 500));
    let fd = |imgs: &[Vec<f32>]| frechet_distance(&reference, &stats(imgs)).unwrap();
    let real = images(&Shapes::new(21, 500, SIZE), 500);
    let fd_real = fd(&real);

    let ladder = |name: &str, scores: Vec<f64>| {
        for w in scores.windows(2) {
            assert!(w[0] < w[1], "{name} ladder not monotone: {scores:?}");
        }
        assert!(fd_real < scores[0], "{name}: real {fd_real} vs {scores:?}");
    };
    ladder(
        "noise",
        [0.05, 0.1, 0.2, 0.4]
            .iter()
            .map(|&s| fd(&noisy(&real, s, 3)))
            .collect(),
    );
    ladder(
        "blur",
        [1, 2, 3].iter().map(|&r| fd(&blurred(&real, r))).collect(),
    );
    // Dropping colour classes: draw 500 images avoiding 1, 2, 3, then 4 of the 6 colours.
    let pool = Shapes::new(22, 4000, SIZE);
    let drop = |dropped: &[usize]| -> Vec<Vec<f32>> {
        (0..pool.len())
            .map(|i| pool.get(i).unwrap())
            .filter(|s| !dropped.contains(&s.labels[1]))
            .take(500)
            .map(|s| s.pixels)
            .collect()
    };
    ladder(
        "dropped classes",
        [vec![5], vec![4, 5], vec![3, 4, 5], vec![2, 3, 4, 5]]
            .iter()
            .map(|d| fd(&drop(d)))
            .collect(),
    );
}
