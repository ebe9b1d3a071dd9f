//! CLIP text encoder and AutoencoderKL against transformers/diffusers (fixtures written by
//! tools/fixtures/make_clip_vae_fixtures.py): outputs within 1e-4 relative (max abs error over
//! max |reference|).

use std::path::{Path, PathBuf};

use burn::tensor::{Int, Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_runtime::text::{ClipTextConfig, ClipTextModel};
use unas_runtime::vae::{AutoencoderKL, AutoencoderKLConfig};
use unas_runtime::weights::Weights;

type B = Cpu;

fn dir(kind: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures")
        .join(kind)
        .join(name)
}

fn io<const D: usize>(w: &mut Weights, key: &str) -> Tensor<B, D> {
    let dims: [usize; D] = w.shapes()[key].clone().try_into().unwrap();
    w.tensor::<B, D>(key, dims, &Default::default()).unwrap()
}

fn rel_err<const D: usize>(ours: Tensor<B, D>, theirs: Tensor<B, D>) -> f64 {
    assert_eq!(ours.dims(), theirs.dims());
    let a: Vec<f32> = ours.to_data().to_vec().unwrap();
    let b: Vec<f32> = theirs.to_data().to_vec().unwrap();
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
    a.iter()
        .zip(&b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

fn check_clip(name: &str, hidden: usize) {
    let d = dir("clip", name);
    let config = ClipTextConfig::from_file(&d.join("config.json")).unwrap();
    assert_eq!(config.hidden_size, hidden);
    let device = Default::default();
    let model = ClipTextModel::<B>::load(&config, &d.join("model.safetensors"), &device).unwrap();
    let mut w = Weights::open(&d.join("io.safetensors")).unwrap();
    let ids: Tensor<B, 2> = io(&mut w, "input_ids");
    let ids: Vec<i64> = ids
        .to_data()
        .to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|&x| x as i64)
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [2, 77]), &device);
    let expected: Tensor<B, 3> = io(&mut w, "last_hidden_state");
    let e = rel_err(model.forward(ids), expected);
    eprintln!("clip {name}: relative error {e:e}");
    assert!(e < 1e-4, "clip {name}: relative error {e:e}");
}

#[test]
fn clip_text_model_matches_transformers() {
    check_clip("tiny", 32); // transformers 5 keys, quick_gelu
    check_clip("tiny-gelu", 24); // transformers 4 `text_model.` keys + position_ids, gelu
}

fn check_vae(name: &str) {
    let d = dir("vae", name);
    let config = AutoencoderKLConfig::from_file(&d.join("config.json")).unwrap();
    let device = Default::default();
    let vae = AutoencoderKL::<B>::load(
        &config,
        &d.join("diffusion_pytorch_model.safetensors"),
        &device,
    )
    .unwrap();
    let mut w = Weights::open(&d.join("io.safetensors")).unwrap();
    let (mean, logvar) = vae.encode(io(&mut w, "image"));
    let e_mean = rel_err(mean, io(&mut w, "mean"));
    let e_logvar = rel_err(logvar, io(&mut w, "logvar"));
    let e_dec = rel_err(vae.decode(io(&mut w, "latents")), io(&mut w, "decoded"));
    eprintln!("vae {name}: mean {e_mean:e}, logvar {e_logvar:e}, decoded {e_dec:e}");
    assert!(
        e_mean < 1e-4 && e_logvar < 1e-4,
        "vae {name} encoder: {e_mean:e} {e_logvar:e}"
    );
    assert!(e_dec < 1e-4, "vae {name} decoder: {e_dec:e}");
}

#[test]
fn autoencoder_kl_matches_diffusers() {
    check_vae("tiny");
    check_vae("small");
    let c = AutoencoderKLConfig::from_file(&dir("vae", "tiny").join("config.json")).unwrap();
    assert_eq!((c.scaling_factor, c.downscale()), (0.18215, 2));
}

#[test]
fn wrong_vae_config_names_the_tensor() {
    // The "small" weights under the "tiny" config: a shape mismatch naming file and key.
    let config = AutoencoderKLConfig::from_file(&dir("vae", "tiny").join("config.json")).unwrap();
    let file = dir("vae", "small").join("diffusion_pytorch_model.safetensors");
    let err = AutoencoderKL::<B>::load(&config, &file, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("diffusion_pytorch_model.safetensors"), "{err}");
    assert!(err.contains("encoder."), "{err}");
}

#[test]
fn vae_reads_deprecated_attention_names() {
    // The tiny VAE with its mid-block attention keys renamed as diffusers < 0.14 wrote them.
    let d = dir("vae", "tiny");
    let src = d.join("diffusion_pytorch_model.safetensors");
    let mut w = Weights::open(&src).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut renamed = 0;
    for (k, shape) in w.shapes() {
        let values = w.take_f32(&k, &shape).unwrap();
        let mut name = k.clone();
        for (new, old) in [
            ("to_q", "query"),
            ("to_k", "key"),
            ("to_v", "value"),
            ("to_out.0", "proj_attn"),
        ] {
            if k.contains(".attentions.0.") && k.contains(&format!(".{new}.")) {
                name = k.replace(&format!(".{new}."), &format!(".{old}."));
                renamed += 1;
            }
        }
        tensors.push((
            name,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
    }
    assert_eq!(renamed, 16, "4 projections x weight/bias x encoder/decoder");
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(k, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .unwrap();
            (k.clone(), view)
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let legacy = tmp.path().join("legacy.safetensors");
    safetensors::serialize_to_file(views, None, &legacy).unwrap();
    let config = AutoencoderKLConfig::from_file(&d.join("config.json")).unwrap();
    let device = Default::default();
    let a = AutoencoderKL::<B>::load(&config, &src, &device).unwrap();
    let b = AutoencoderKL::<B>::load(&config, &legacy, &device).unwrap();
    let mut io_w = Weights::open(&d.join("io.safetensors")).unwrap();
    let z: Tensor<B, 4> = io(&mut io_w, "latents");
    assert_eq!(rel_err(a.decode(z.clone()), b.decode(z)), 0.0);
}
