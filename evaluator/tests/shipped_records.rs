//! The artifacts shipped under `configs/` are burn records of the runtime's module structs: a
//! changed layer must still load every one of their parameters. burn initialises parameters
//! lazily and loading replaces them, so a parameter a record does not fill keeps a fresh random
//! draw — loading twice would then give two different values. Loading each artifact twice and
//! comparing every parameter catches that (a file that does not parse fails outright), and the
//! loaded module must have the parameters of a freshly built one (an optional layer the record
//! leaves out would otherwise silently vanish).

use std::path::{Path, PathBuf};

use unas_evaluator::quality::small_vae::load_vae;
use unas_evaluator::quality::supernet_store;
use unas_runtime::save::float_params;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The one sub-folder of `dir` holding `file`.
fn shipped(dir: &Path, file: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join(file).is_file())
        .unwrap_or_else(|| panic!("no shipped {file} under {}", dir.display()))
}

type Params = std::collections::HashMap<String, unas_runtime::save::FloatParam>;

fn assert_same_params(a: &Params, b: &Params, fresh: &Params, what: &str) {
    let names = |p: &Params| {
        let mut v: Vec<String> = p.keys().cloned().collect();
        v.sort();
        v
    };
    assert_eq!(
        names(a),
        names(fresh),
        "{what}: parameters of a fresh module"
    );
    assert_eq!(a.len(), b.len(), "{what}");
    assert!(!a.is_empty(), "{what}");
    for (k, v) in a {
        assert_eq!(
            Some(v),
            b.get(k),
            "{what}: {k} differs between two loads (not in the file?)"
        );
    }
}

#[test]
fn the_shipped_small_vae_loads_every_parameter() {
    let dir = shipped(&root().join("configs/data"), "vae.mpk");
    let file = dir.join("vae.mpk");
    let (a, b) = (load_vae(&file).unwrap(), load_vae(&file).unwrap());
    let fresh = unas_evaluator::quality::small_vae::small_vae_config()
        .init::<unas_runtime::device::Cpu>(&Default::default());
    let fresh = float_params(&fresh);
    assert_same_params(&float_params(&a), &float_params(&b), &fresh, "vae.mpk");
}

#[test]
fn the_shipped_supernet_loads_every_parameter() {
    let dir = shipped(
        &root().join("configs/supernets/tiny-depth"),
        "supernet.json",
    );
    let (info, a) = supernet_store::load(&dir).unwrap();
    let (_, b) = supernet_store::load(&dir).unwrap();
    let fresh = unas_runtime::UNet2DConditionModel::<unas_runtime::device::Cpu>::init(
        &info.arch,
        &Default::default(),
    )
    .unwrap();
    let fresh = float_params(&fresh);
    assert_same_params(&float_params(&a), &float_params(&b), &fresh, "supernet.mpk");
}
