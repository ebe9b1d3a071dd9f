//! Datasets: determinism, captions that match labels, Fashion-MNIST files, folder errors.

use std::path::Path;

use unas_evaluator::quality::data::fashion_mnist::{FashionMnist, DEBIAN_DIR};
use unas_evaluator::quality::data::folder::ImageFolder;
use unas_evaluator::quality::data::shapes::Shapes;
use unas_evaluator::quality::data::Dataset;

#[test]
fn shapes_are_deterministic_captioned_and_varied() {
    let a = Shapes::new(5, 500, 32);
    let b = Shapes::new(5, 500, 32);
    let mut captions = std::collections::HashSet::new();
    for i in 0..500 {
        let (x, y) = (a.get(i).unwrap(), b.get(i).unwrap());
        assert_eq!(x, y);
        assert_eq!(x.pixels.len(), 3 * 32 * 32);
        assert!(x.pixels.iter().all(|v| (0.0..=1.0).contains(v)));
        // The caption names every attribute's class.
        for (attr, &label) in a.attributes().iter().zip(&x.labels) {
            assert!(x.caption.contains(&attr.classes[label]), "{}", x.caption);
        }
        captions.insert(x.caption);
    }
    assert!(
        captions.len() > 250,
        "only {} distinct captions",
        captions.len()
    );
    assert_ne!(Shapes::new(6, 10, 32).get(0).unwrap(), a.get(0).unwrap());
    assert!(a.get(500).is_err());
}

#[test]
fn fashion_mnist_loads_from_the_debian_package() {
    let ds = FashionMnist::load(Path::new(DEBIAN_DIR), false, 32).unwrap();
    assert_eq!(ds.len(), 10_000);
    let s = ds.get(0).unwrap();
    assert_eq!(s.pixels.len(), 3 * 32 * 32);
    // Padding rows stay black; the item itself is not empty.
    assert!(s.pixels[..32].iter().all(|&v| v == 0.0));
    assert!(s.pixels.iter().any(|&v| v > 0.5));
    assert!(s.caption.starts_with("a photo of a "));
    // Every class occurs.
    let mut seen = [false; 10];
    for i in 0..1000 {
        seen[ds.get(i).unwrap().labels[0]] = true;
    }
    assert!(seen.iter().all(|&x| x));
}

#[test]
fn a_missing_dataset_folder_is_a_clear_error() {
    let err = FashionMnist::load(Path::new("/nonexistent/fmnist"), true, 32).unwrap_err();
    assert!(err
        .to_string()
        .contains("/nonexistent/fmnist/train-images-idx3-ubyte.gz"));
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path(), 32).unwrap_err();
    assert!(err.to_string().contains("no captioned"));
    // An image without its caption file is named.
    let img = image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10]));
    img.save(dir.path().join("red.png")).unwrap();
    let err = ImageFolder::open(dir.path(), 32).unwrap_err();
    assert!(err.to_string().contains("red.txt"), "{err}");
    std::fs::write(dir.path().join("red.txt"), "a red card\n").unwrap();
    let ds = ImageFolder::open(dir.path(), 16).unwrap();
    let s = ds.get(0).unwrap();
    assert_eq!(s.caption, "a red card");
    assert_eq!(s.pixels.len(), 3 * 16 * 16);
    assert!((s.pixels[0] - 200.0 / 255.0).abs() < 1e-3);
}
