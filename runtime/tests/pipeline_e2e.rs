//! The text-to-image pipeline against diffusers' StableDiffusionPipeline on two tiny
//! random-weight model folders (tools/fixtures/make_pipeline_fixtures.py): one diffusers
//! layout (`unet/`), one DeciDiffusion layout (`flexible_unet/`), each with DDIM and
//! DPM-Solver++, from the same initial noise. Final latents within 1e-3 relative (max abs
//! error over max |reference|); the decoded image within 1e-3 too.

use std::path::{Path, PathBuf};

use burn::tensor::Tensor;
use serde_json::Value;
use unas_runtime::device::Cpu;
use unas_runtime::pipeline::StableDiffusion;
use unas_runtime::pipeline::{generate_with, GenerateParams, GenerateRequest, ModelDir};
use unas_runtime::weights::Weights;

type B = Cpu;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/fixtures/pipeline")
}

fn reference(key: &str) -> Vec<f32> {
    let mut w = Weights::open(&fixtures().join("cases.safetensors")).unwrap();
    let shape = w.shapes()[key].clone();
    w.take_f32(key, &shape).unwrap()
}

fn rel_err(ours: &[f32], theirs: &[f32]) -> f64 {
    assert_eq!(ours.len(), theirs.len());
    let scale = theirs.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (*a as f64 - *b as f64).abs())
        .fold(0.0, f64::max)
        / scale
}

fn cases() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap()).unwrap()
}

fn request(case: &Value, size: usize) -> GenerateRequest {
    GenerateRequest {
        model: fixtures().join(case["model"].as_str().unwrap()),
        unet: None,
        scheduler: Some(case["scheduler"].as_str().unwrap().parse().unwrap()),
        params: GenerateParams {
            prompt: case["prompt"].as_str().unwrap().into(),
            negative_prompt: case["negative_prompt"].as_str().unwrap().into(),
            guidance_scale: case["guidance"].as_f64().unwrap(),
            guidance_rescale: case["guidance_rescale"].as_f64().unwrap(),
            width: size,
            height: size,
            steps: case["steps"].as_u64().unwrap() as usize,
            num_images: 2,
            seed: 0,
        },
        noise: Some(fixtures().join("cases.safetensors")),
    }
}

#[test]
fn final_latents_match_diffusers() {
    let cases = cases();
    let size = cases["size"].as_u64().unwrap() as usize;
    let mut seen = std::collections::BTreeSet::new();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let out =
            generate_with::<B>(&request(case, size), &Default::default(), &mut |_, _| {}).unwrap();
        assert_eq!(out.latent_shape, [2, 4, size / 2, size / 2]);
        assert_eq!(out.step_s.len() as u64, case["steps"].as_u64().unwrap());
        let e = rel_err(&out.latents, &reference(name));
        eprintln!("{name}: final latents relative error {e:e}");
        assert!(e < 1e-3, "{name}: final latents relative error {e:e}");
        seen.insert((
            case["model"].as_str().unwrap().to_string(),
            case["scheduler"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(seen.len(), 4, "both layouts x DDIM and DPM-Solver++");
}

#[test]
fn decoded_image_matches_diffusers() {
    let cases = cases();
    let size = cases["size"].as_u64().unwrap() as usize;
    let case = &cases["cases"][0];
    assert_eq!(case["image"], Value::Bool(true));
    let device = Default::default();
    let dir = ModelDir::open(&fixtures().join("tiny-sd"), None).unwrap();
    let sd = StableDiffusion::<B>::load(&dir, &device).unwrap();
    let latents = reference("sd_ddim");
    let latents = Tensor::<B, 4>::from_data(
        burn::tensor::TensorData::new(latents, [2, 4, size / 2, size / 2]),
        &device,
    );
    let image: Vec<f32> = sd.decode(latents).to_data().to_vec().unwrap();
    let e = rel_err(&image, &reference("image_sd_ddim"));
    eprintln!("decoded image relative error {e:e}");
    assert!(e < 1e-3, "decoded image relative error {e:e}");
}

#[test]
fn same_seed_same_image() {
    let cases = cases();
    let mut req = request(&cases["cases"][1], cases["size"].as_u64().unwrap() as usize);
    req.noise = None;
    req.params.steps = 2;
    req.params.num_images = 1;
    req.params.seed = 42;
    let run =
        |r: &GenerateRequest| generate_with::<B>(r, &Default::default(), &mut |_, _| {}).unwrap();
    let a = run(&req);
    let b = run(&req);
    assert_eq!(a.latents, b.latents);
    assert_eq!(a.images, b.images);
    req.params.seed = 43;
    assert_ne!(run(&req).latents, a.latents);
}

#[test]
fn damaged_model_folders_name_the_problem() {
    let cases = cases();
    let size = cases["size"].as_u64().unwrap() as usize;
    let base = request(&cases["cases"][0], size);
    let err = |req: &GenerateRequest| {
        generate_with::<B>(req, &Default::default(), &mut |_, _| {})
            .unwrap_err()
            .to_string()
    };
    // Missing folder.
    let mut r = base.clone();
    r.model = PathBuf::from("/nonexistent/model");
    assert!(err(&r).contains("/nonexistent/model"), "{}", err(&r));

    // Copy tiny-sd, then break one thing at a time.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("m");
    copy_dir(&fixtures().join("tiny-sd"), &copy);
    r.model = copy.clone();
    // Corrupt weights file.
    let vae = copy.join("vae/diffusion_pytorch_model.safetensors");
    let good = std::fs::read(&vae).unwrap();
    std::fs::write(&vae, &good[..good.len() / 2]).unwrap();
    let e = err(&r);
    assert!(e.contains("vae/diffusion_pytorch_model.safetensors"), "{e}");
    std::fs::write(&vae, &good).unwrap();
    // Missing tokenizer file.
    std::fs::remove_file(copy.join("tokenizer/merges.txt")).unwrap();
    let e = err(&r);
    assert!(e.contains("merges.txt"), "{e}");
    copy_dir(
        &fixtures().join("tiny-sd/tokenizer"),
        &copy.join("tokenizer"),
    );
    // Bad scheduler config field.
    let sched = copy.join("scheduler/scheduler_config.json");
    let text = std::fs::read_to_string(&sched).unwrap();
    std::fs::write(&sched, text.replace("scaled_linear", "sigmoid")).unwrap();
    let e = err(&r);
    assert!(
        e.contains("scheduler_config.json") && e.contains("beta_schedule"),
        "{e}"
    );
    std::fs::write(&sched, text).unwrap();
    // U-Net config that does not match its weights.
    let r2 = GenerateRequest {
        unet: Some(fixtures().join("tiny-deci/flexible_unet")),
        ..r.clone()
    };
    let cfg = copy.join("unet/config.json");
    std::fs::copy(fixtures().join("tiny-deci/flexible_unet/config.json"), &cfg).unwrap();
    let e = err(&r);
    assert!(
        e.contains("unet/diffusion_pytorch_model.safetensors"),
        "{e}"
    );
    // ...while --unet with a matching folder works.
    let mut r2 = r2;
    r2.params.steps = 1;
    generate_with::<B>(&r2, &Default::default(), &mut |_, _| {}).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
