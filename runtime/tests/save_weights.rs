//! Saving through the loaders (`unas_runtime::save`): a U-Net, VAE and CLIP text encoder
//! loaded from the diffusers/transformers files of the fixture pipelines and saved again give
//! back every tensor of the original file under its key, with its value; a module saved and
//! loaded again has the same parameters bit for bit; a loader that leaves a parameter unset
//! cannot be saved through.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use unas_runtime::pipeline::model_dir::ModelDir;
use unas_runtime::pipeline::stable_diffusion::read_unet_arch;
use unas_runtime::save::{float_params, save_safetensors};
use unas_runtime::text::{ClipTextConfig, ClipTextModel};
use unas_runtime::vae::{AutoencoderKL, AutoencoderKLConfig};
use unas_runtime::{UNet2DConditionModel, Weights};

fn pipeline(name: &str) -> ModelDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures/pipeline")
        .join(name);
    ModelDir::open(&root, None).unwrap()
}

/// Every tensor of a safetensors file as f32 (f16/bf16 widened), by key without `strip`.
fn read_all(path: &Path, strip: &str) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let mut w = Weights::open(path).unwrap();
    let mut out = BTreeMap::new();
    for (key, shape) in w.shapes() {
        if key.ends_with("position_ids") {
            continue;
        }
        let values = w.take_f32(&key, &shape).unwrap();
        out.insert(key.trim_start_matches(strip).to_string(), (shape, values));
    }
    out
}

fn assert_same_tensors(original: &Path, saved: &Path, strip: &str) {
    let a = read_all(original, strip);
    let b = read_all(saved, strip);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{}: the same keys",
        original.display()
    );
    for (k, (shape, values)) in &a {
        assert_eq!(&b[k].0, shape, "{k}");
        assert!(
            b[k].1
                .iter()
                .zip(values)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{k}: the same values"
        );
    }
}

#[test]
fn a_diffusers_unet_saved_again_is_its_file() {
    for (name, sub) in [("tiny-sd", "unet"), ("tiny-deci", "flexible_unet")] {
        let dir = pipeline(name);
        assert!(dir.unet_config.starts_with(dir.root.join(sub)), "{name}");
        let arch = read_unet_arch(&dir.unet_config).unwrap();
        let device = Default::default();
        let unet = UNet2DConditionModel::<Flex>::load(&arch, &dir.unet_weights, &device).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("diffusion_pytorch_model.safetensors");
        unet.save(&out).unwrap();
        assert_same_tensors(&dir.unet_weights, &out, "");
        let again = UNet2DConditionModel::<Flex>::load(&arch, &out, &device).unwrap();
        assert_eq!(
            float_params(&again),
            float_params(&unet),
            "{name}: reloads bit for bit"
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no temporary file left beside it");
    }
}

#[test]
fn a_vae_and_a_text_encoder_saved_again_are_their_files() {
    let dir = pipeline("tiny-sd");
    let device = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    let config = AutoencoderKLConfig::from_file(&dir.vae_config).unwrap();
    let vae = AutoencoderKL::<Flex>::load(&config, &dir.vae_weights, &device).unwrap();
    let out = tmp.path().join("vae.safetensors");
    vae.save(&out).unwrap();
    assert_same_tensors(&dir.vae_weights, &out, "");
    let config = ClipTextConfig::from_file(&dir.text_encoder_config).unwrap();
    let text = ClipTextModel::<Flex>::load(&config, &dir.text_encoder_weights, &device).unwrap();
    let out = tmp.path().join("model.safetensors");
    text.save(&out).unwrap();
    // transformers writes the keys under `text_model.` (older files without it load too).
    assert!(read_all(&out, "")
        .keys()
        .all(|k| k.starts_with("text_model.")));
    assert_same_tensors(&dir.text_encoder_weights, &out, "text_model.");
    let again = ClipTextModel::<Flex>::load(&config, &out, &device).unwrap();
    assert_eq!(float_params(&again), float_params(&text));
}

/// A randomly initialised `tiny-nas` U-Net and a temporary file path for it.
fn tiny_nas() -> (
    unas_space::UNetArch,
    UNet2DConditionModel<Flex>,
    tempfile::TempDir,
    PathBuf,
) {
    let arch = unas_space::preset("tiny-nas");
    let unet = UNet2DConditionModel::<Flex>::init(&arch, &Default::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    (arch, unet, tmp, out)
}

#[test]
fn a_randomly_initialised_unet_round_trips_bit_for_bit() {
    let (arch, unet, _tmp, out) = tiny_nas();
    let device = Default::default();
    unet.save(&out).unwrap();
    let again = UNet2DConditionModel::<Flex>::load(&arch, &out, &device).unwrap();
    assert_eq!(float_params(&again), float_params(&unet));
}

#[test]
fn a_loader_that_leaves_a_parameter_unset_cannot_save() {
    let (_, unet, _tmp, out) = tiny_nas();
    let e = save_safetensors(
        &unet,
        |_: &mut UNet2DConditionModel<Flex>, _, _| Ok(()),
        &out,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("never sets parameter"), "{e}");
    assert!(!out.exists(), "nothing written");
}
