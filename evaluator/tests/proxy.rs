//! The end-to-end proxy on the built-in data at a tiny budget: reproducible from a seed (two
//! evaluations from scratch, no score memo, agree to the bit), a trained candidate beats an
//! untrained one, and the untrained one scores worse than real images degraded by noise or
//! blur. The cache is written into a temporary folder.

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

    // Same seed, same data, same arch → the same score, to the bit, from two evaluations that
    // both train and sample from scratch: the first never touches the score memo, the second
    // finds none.
    let memo = proxy.memo_path(&arch, 7, cfg.steps);
    assert!(!memo.exists());
    let a = proxy.evaluate_uncached(&arch, 7, cfg.steps).unwrap();
    assert!(!memo.exists(), "an uncached evaluation writes no memo");
    assert!(a.train_seconds > 0.0 && a.sample_seconds > 0.0, "{a:?}");
    let b = proxy.evaluate(&arch, 7).unwrap();
    assert!(memo.exists(), "a memoised evaluation writes its memo");
    assert!(b.train_seconds > 0.0, "{b:?}");
    let bits = |s: &unas_evaluator::quality::proxy::ProxyScore| {
        [s.fd, s.kid, s.kid_std, s.adherence, s.final_loss].map(f64::to_bits)
    };
    assert_eq!(bits(&a), bits(&b), "{a:?} vs {b:?}");
    assert_eq!((&a.metric, a.samples), (&b.metric, b.samples));
    // A third evaluation is the memo's: the score of the second, times included (the same
    // training time says nothing was trained again). To the last ulp only: serde_json parses
    // floats without its `float_roundtrip` feature, which can move the last bit.
    let c = proxy.evaluate(&arch, 7).unwrap();
    let ulp = |x: f64, y: f64| (x - y).abs() <= 2.0 * f64::EPSILON * x.abs().max(y.abs());
    for (x, y) in [
        (c.fd, b.fd),
        (c.kid, b.kid),
        (c.final_loss, b.final_loss),
        (c.train_seconds, b.train_seconds),
        (c.sample_seconds, b.sample_seconds),
    ] {
        assert!(ulp(x, y), "{c:?} vs {b:?}");
    }
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

    // Fine-tuning from given weights (how a supernet candidate is fine-tuned): the same start
    // and seed give the same bits, and 20 steps lower the validation loss of an untrained start.
    let val = proxy.validation_set();
    let zero_shot = val.loss::<Cpu>(&cfg.recipe, 64, &device, &|x, t, c| {
        untrained.forward(x, t, c)
    });
    let f1 = proxy
        .finetune(&arch, untrained.clone(), 5, 20, &val)
        .unwrap();
    let f2 = proxy
        .finetune(&arch, untrained.clone(), 5, 20, &val)
        .unwrap();
    assert_eq!(f1.overall.to_bits(), f2.overall.to_bits());
    let after = val.loss::<Cpu>(&cfg.recipe, 64, &device, &|x, t, c| {
        untrained.forward(x, t, c)
    });
    assert_eq!(
        after.overall.to_bits(),
        zero_shot.overall.to_bits(),
        "fine-tuning leaves its start as it was"
    );
    assert!(
        f1.overall < zero_shot.overall,
        "fine-tuned {} vs untrained {}",
        f1.overall,
        zero_shot.overall
    );

    // Shipped prepared data (`quality.prepared`): an empty cache is filled by copying it after
    // checking its SHA256SUMS — no VAE is trained, and the latents are the same bits; a file
    // that does not match its sum is refused and nothing is left in the cache.
    use sha2::{Digest, Sha256};
    let (cached, _) = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| (e.path(), ()))
        .find(|(p, _)| p.join("manifest.json").exists())
        .unwrap();
    let shipped = tempfile::tempdir().unwrap();
    let ship = shipped.path().join(cached.file_name().unwrap());
    std::fs::create_dir_all(&ship).unwrap();
    let mut sums = String::new();
    for e in std::fs::read_dir(&cached).unwrap().flatten() {
        if !e.file_type().unwrap().is_file() {
            continue; // the score memo
        }
        let bytes = std::fs::read(e.path()).unwrap();
        std::fs::write(ship.join(e.file_name()), &bytes).unwrap();
        let hex: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        sums.push_str(&format!("{hex}  {}\n", e.file_name().to_string_lossy()));
    }
    std::fs::write(ship.join("SHA256SUMS"), &sums).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let with_prepared = ProxyConfig {
        prepared: Some(shipped.path().to_path_buf()),
        ..config(fresh.path())
    };
    let mut lines = Vec::new();
    let copied = Proxy::prepare(&with_prepared, arch.stem.cross_attention_dim, &mut |l| {
        lines.push(l.to_string())
    })
    .unwrap();
    assert!(lines[0].starts_with("copying prepared data"), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("VAE")), "{lines:?}");
    assert_eq!(copied.cache().mean, proxy.cache().mean);
    assert_eq!(copied.describe_data(), proxy.describe_data());
    let latents = ship.join("vae.mpk");
    let mut bytes = std::fs::read(&latents).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&latents, &bytes).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let tampered = ProxyConfig {
        prepared: Some(shipped.path().to_path_buf()),
        ..config(fresh.path())
    };
    let err = Proxy::prepare(&tampered, arch.stem.cross_attention_dim, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("SHA-256") && err.contains("vae.mpk"), "{err}");
    assert_eq!(
        std::fs::read_dir(fresh.path()).unwrap().count(),
        0,
        "nothing half-written"
    );
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
    // The default EMA (the last half of the steps) needs a window of 10 iterates: 19 steps.
    assert!(ProxyConfig::default().check().is_ok());
    let short = ProxyConfig {
        steps: 18,
        ..ProxyConfig::default()
    };
    let err = short.check().unwrap_err().to_string();
    assert!(
        err.contains("quality.recipe.ema_fraction") && err.contains("9 iterate(s)"),
        "{err}"
    );
    let mut no_ema = short.clone();
    no_ema.recipe.ema_fraction = 0.0;
    assert!(no_ema.check().is_ok());
    assert!(ProxyConfig { steps: 19, ..short }.check().is_ok());
    // So does the teacher's run, when there is a teacher.
    let teacher = ProxyConfig {
        teacher: Some("tiny".into()),
        teacher_steps: 5,
        ..ProxyConfig::default()
    };
    let err = teacher.check().unwrap_err().to_string();
    assert!(
        err.contains("quality.recipe.ema_fraction") && err.contains("teacher"),
        "{err}"
    );
    assert!(ProxyConfig {
        teacher: None,
        ..teacher
    }
    .check()
    .is_ok());
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
