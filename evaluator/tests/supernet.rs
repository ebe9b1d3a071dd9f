//! Supernet training: an interrupted and resumed run ends with the same weights and losses
//! as an uninterrupted one (every step's draws come from (seed, step); weights, optimiser
//! state and EMA are checkpointed), a checkpoint of other settings is refused, and the
//! validation loss scores sub-networks deterministically.

use burn::backend::Autodiff;
use unas_evaluator::quality::supernet::settings_hash;
use unas_evaluator::quality::supernet::{train_supernet, SupernetSettings, TrainData};
use unas_evaluator::quality::supernet_store::{self, SupernetInfo};
use unas_evaluator::quality::val_loss::ValidationSet;
use unas_runtime::device::Cpu;
use unas_runtime::RoleWeights;

mod small;

use small::{cache, space};

type Train = Autodiff<Cpu>;

fn settings() -> SupernetSettings {
    // An EMA over the last 11 of 12 steps (the fewest iterates an EMA may average is 10), so
    // the interrupted run's checkpoint holds an EMA too.
    SupernetSettings {
        steps: 12,
        batch: 2,
        warmup_steps: 2,
        checkpoint_every: 4,
        ema_fraction: 0.84,
        random_subnets: 1,
        ..SupernetSettings::default()
    }
}

#[test]
fn resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let (space, cache) = (space(), cache());
    let uncond = vec![0.0; 64];
    let data = TrainData {
        cache: &cache,
        uncond: &uncond,
        train_items: 32,
    };
    let t = space.topologies().remove(0);
    let s = settings();
    let device = Default::default();
    let run = |s: &SupernetSettings, dir: &std::path::Path, stop: Option<usize>| {
        train_supernet::<Train>(&space, &t, &data, s, None, dir, &device, stop, &mut |_| {})
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = run(&s, a.path(), None).unwrap();
    assert_eq!(whole.steps_run, 12);
    // Interrupted after 6 steps: the last checkpoint is step 4, so steps 5 and 6 are redone.
    let part = run(&s, b.path(), Some(6)).unwrap();
    assert_eq!(part.steps_run, 6);
    let rest = run(&s, b.path(), None).unwrap();
    assert_eq!(rest.steps_run, 8, "resumed from the step-4 checkpoint");
    assert_eq!(rest.losses, whole.losses);
    let (wa, wb) = (
        RoleWeights::from_unet(&whole.arch, &whole.unet).unwrap(),
        RoleWeights::from_unet(&rest.arch, &rest.unet).unwrap(),
    );
    for p in wa.paths() {
        assert_eq!(wa.get(p), wb.get(p), "{p}");
    }
    // A finished run resumes to nothing.
    assert_eq!(run(&s, a.path(), None).unwrap().steps_run, 0);

    // Other settings in the same folder: refused, naming the file.
    let other = SupernetSettings {
        lr: 5e-4,
        ..s.clone()
    };
    let err = run(&other, a.path(), None).err().unwrap().to_string();
    assert!(
        err.contains("latest.json") && err.contains("other settings"),
        "{err}"
    );
    // An EMA over fewer than 10 iterates is refused, naming the field.
    let short = SupernetSettings {
        ema_fraction: 0.5,
        ..s.clone()
    };
    let err = run(&short, a.path(), None).err().unwrap().to_string();
    assert!(err.contains("supernet.ema_fraction"), "{err}");

    // Saved and loaded, the supernet scores sub-networks on the frozen validation set, the
    // same bits twice, and the covering architecture differs from the smallest.
    let info = SupernetInfo::new(
        &space,
        &t,
        &whole.arch,
        &s,
        &settings_hash(&space, &t, &s, None),
        None,
        "random".into(),
        &whole.losses,
        "test".into(),
    );
    let dir = tempfile::tempdir().unwrap();
    supernet_store::save(dir.path(), &info, &whole.unet).unwrap();
    assert!(supernet_store::is_complete(dir.path(), &info.settings_hash));
    let (info2, unet) = supernet_store::load(dir.path()).unwrap();
    assert!(
        info2.weights_sha256.is_some(),
        "save records the weights' hash"
    );
    assert_eq!(
        info2,
        SupernetInfo {
            weights_sha256: info2.weights_sha256.clone(),
            ..info.clone()
        }
    );
    // Edited settings (or space) no longer hash to the recorded settings hash: refused.
    let json = dir.path().join("supernet.json");
    let original = std::fs::read_to_string(&json).unwrap();
    let mut edited: serde_json::Value = serde_json::from_str(&original).unwrap();
    edited["settings"]["seed"] = serde_json::json!(s.seed + 1);
    std::fs::write(&json, serde_json::to_string(&edited).unwrap()).unwrap();
    let err = supernet_store::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("settings_hash"), "{err}");
    std::fs::write(&json, &original).unwrap();
    // Other weights than those recorded: refused.
    let mpk = dir.path().join("supernet.mpk");
    let weights = std::fs::read(&mpk).unwrap();
    let mut flipped = weights.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    std::fs::write(&mpk, &flipped).unwrap();
    let err = supernet_store::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("SHA-256"), "{err}");
    std::fs::write(&mpk, &weights).unwrap();
    let val = ValidationSet::new(&cache, &(32..40).collect::<Vec<_>>(), 4, 1000, 0);
    let small = space.smallest_arch(&t).unwrap();
    let l1 = supernet_store::score(&info2, &unet, &small, &val, 7).unwrap();
    let l2 = supernet_store::score(&info2, &unet, &small, &val, 7).unwrap();
    assert_eq!(l1, l2, "the same bits twice");
    // Another chunking changes only the forward's rounding (the batch is part of a label).
    let l3 = supernet_store::score(&info2, &unet, &small, &val, 3).unwrap();
    assert!(
        (l1.overall - l3.overall).abs() < 1e-6 * l1.overall,
        "{l1:?} {l3:?}"
    );
    assert_eq!(l1.bands.len(), 4);
    let big = supernet_store::score(&info2, &unet, &whole.arch, &val, 8).unwrap();
    assert!(l1.overall.is_finite() && big.overall.is_finite());
    assert_ne!(l1.overall, big.overall);
}
