//! The shapes feature extractor learns the attributes, and Fréchet distance on its features
//! ranks a degradation ladder (noise, blur, dropped colour classes) monotonically.

use unas_evaluator::quality::data::shapes::Shapes;
use unas_evaluator::quality::data::Dataset;
use unas_evaluator::quality::features::{accuracy, FeatureExtractor, FeatureTraining};
use unas_evaluator::quality::metrics::frechet_distance;

const SIZE: usize = 32;

mod support;
use support::{blurred, noisy};

fn images(ds: &dyn Dataset, n: usize) -> Vec<Vec<f32>> {
    (0..n).map(|i| ds.get(i).unwrap().pixels).collect()
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
        [1, 2, 3]
            .iter()
            .map(|&r| fd(&blurred(&real, SIZE, r)))
            .collect(),
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
