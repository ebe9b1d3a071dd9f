//! The end-to-end proxy on the built-in data at a tiny budget: reproducible from a seed, a
//! trained candidate beats an untrained one, and the untrained one scores worse than real
//! images degraded by noise or blur. The cache is written into a temporary folder.

use unas_evaluator::quality::metrics::kendall_tau;
use unas_evaluator::quality::proxy::{open_dataset, Proxy, ProxyConfig};
use unas_evaluator::quality::train::init_seeded;
use unas_runtime::device::Cpu;
use unas_runtime::UNet2DConditionModel;
use unas_space::preset;

mod support;
use support::{blurred, noisy};

fn config(cache: &std::path::Path) -> ProxyConfig {
    ProxyConfig {
        images: 300,
        vae_steps: 40,
        extractor_images: 600,
        extractor_epochs: 2,
        steps: 30,
        batch: 8,
        samples: 48,
        sampling_steps: 5,
        cache_dir: Some(cache.to_path_buf()),
        ..ProxyConfig::default()
    }
}

#[test]
fn proxy_is_reproducible_and_ranks_untrained_worst() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let arch = preset("tiny-nas");
    let proxy = Proxy::prepare(&cfg, arch.stem.cross_attention_dim, &mut |_| {}).unwrap();

    // Same seed, same data, same arch → the same score, to the bit.
    let a = proxy.evaluate(&arch, 7).unwrap();
    let b = proxy.evaluate(&arch, 7).unwrap();
    assert_eq!(a.fd.to_bits(), b.fd.to_bits(), "{a:?} vs {b:?}");
    assert_eq!(a.kid.to_bits(), b.kid.to_bits());
    assert_eq!(a.samples, cfg.samples);
    assert!(a.metric.starts_with("fd[featurenet["), "{}", a.metric);
    assert!(a.fd.is_finite() && a.fd > 0.0);

    // An untrained U-Net scores worse than the trained one and than degraded real images.
    let device = Default::default();
    let untrained = init_seeded::<Cpu, _>(&device, 7, || {
        UNet2DConditionModel::<Cpu>::init(&arch, &device).unwrap()
    });
    let (fd_untrained, _, _) = proxy
        .score(&proxy.sample(&untrained, cfg.sampling_steps).unwrap())
        .unwrap();
    assert!(
        fd_untrained > a.fd,
        "untrained {fd_untrained} vs trained {}",
        a.fd
    );
    let ds = open_dataset("builtin", cfg.image_size, cfg.data_seed).unwrap();
    let real: Vec<Vec<f32>> = (1000..1000 + cfg.samples)
        .map(|i| ds.get(i).unwrap().pixels)
        .collect();
    // A teacher that is no preset and no file is named by its field (checked before any data
    // is prepared).
    let bad = ProxyConfig {
        teacher: Some("no-such-teacher".into()),
        ..cfg.clone()
    };
    let err = Proxy::prepare(&bad, arch.stem.cross_attention_dim, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("quality.teacher"), "{err}");
    for (label, images) in [
        ("noise 0.1", noisy(&real, 0.1, 1)),
        ("noise 0.2", noisy(&real, 0.2, 2)),
        ("blur 3x3", blurred(&real, cfg.image_size, 1)),
    ] {
        let (fd, _, _) = proxy.score(&images).unwrap();
        assert!(
            fd < fd_untrained,
            "{label}: {fd} vs untrained {fd_untrained}"
        );
    }
}

#[test]
fn a_bad_quality_setting_names_its_field() {
    let cfg = ProxyConfig {
        samples: 1,
        ..ProxyConfig::default()
    };
    let err = cfg.check().unwrap_err().to_string();
    assert!(err.contains("quality.samples"), "{err}");
    let cfg = ProxyConfig {
        guidance: 0.5,
        ..ProxyConfig::default()
    };
    assert!(cfg
        .check()
        .unwrap_err()
        .to_string()
        .contains("quality.guidance"));
    let cfg = ProxyConfig {
        teacher_steps: 0,
        ..ProxyConfig::default()
    };
    assert!(cfg
        .check()
        .unwrap_err()
        .to_string()
        .contains("quality.teacher_steps"));
}

#[test]
fn kendall_tau_matches_hand_computed_cases() {
    assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), 1.0);
    assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), -1.0);
    // Pairs (0,1) C, (0,2) C, (0,3) C, (1,2) D, (1,3) C, (2,3) C: (5 - 1) / 6.
    let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 4.0]);
    assert!((t - 4.0 / 6.0).abs() < 1e-12, "{t}");
    // τ-b with a tie in b: C = 2, D = 0, ties in b = 1 → 2 / sqrt(3 * 2).
    let t = kendall_tau(&[1.0, 2.0, 3.0], &[1.0, 2.0, 2.0]);
    assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-12, "{t}");
}
