//! CLI-level tests of `unas generate` on the tiny model folders of
//! tools/fixtures/make_pipeline_fixtures.py: PNGs with parameters as tEXt chunks, `--noise` /
//! `--save-latents` matching diffusers, and one clear error (exit code 2, nothing written) for a
//! missing or damaged model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use unas_runtime::weights::Weights;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/fixtures/pipeline")
}

fn unas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(args)
        .output()
        .expect("run unas")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tensor(path: &Path, key: &str) -> Vec<f32> {
    let mut w = Weights::open(path).unwrap();
    let shape = w.shapes()[key].clone();
    w.take_f32(key, &shape).unwrap()
}

#[test]
fn generate_writes_pngs_and_latents_like_diffusers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("img.png");
    let latents = tmp.path().join("latents.safetensors");
    let cases = fixtures().join("cases.safetensors");
    let model = fixtures().join("tiny-deci");
    let o = unas(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--prompt",
        "a castle at night",
        "--negative-prompt",
        "ugly",
        "--steps",
        "7",
        "--guidance",
        "3",
        "--scheduler",
        "dpm",
        "--num-images",
        "2",
        "--noise",
        cases.to_str().unwrap(),
        "--save-latents",
        latents.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("s/step"), "{}", stderr(&o));
    let ours = tensor(&latents, "latents");
    let theirs = tensor(&cases, "deci_dpm");
    let scale = theirs.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let err = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(err / scale < 1e-3, "relative error {}", err / scale);
    for i in 0..2 {
        let png = std::fs::read(tmp.path().join(format!("img-{i}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let has = |needle: &[u8]| png.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"tEXtprompt\0a castle at night"));
        assert!(has(b"tEXtnegative_prompt\0ugly"));
        assert!(has(b"tEXtscheduler\0dpm"));
        assert!(has(b"tEXtsteps\x007"));
    }
    assert!(!out.exists(), "several images are numbered");
}

#[test]
fn same_seed_same_png() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixtures().join("tiny-sd");
    let run = |name: &str, seed: &str| {
        let out = tmp.path().join(name);
        let o = unas(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "a photo of a cat",
            "--steps",
            "2",
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        std::fs::read(out).unwrap()
    };
    let a = run("a.png", "1");
    assert_eq!(a, run("b.png", "1"));
    assert_ne!(a, run("c.png", "2"));
}

#[test]
fn bad_models_exit_2_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.png");
    let run = |model: &Path, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "x",
            "--steps",
            "1",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        unas(&args)
    };
    // Missing folder.
    let o = run(Path::new("/nonexistent/sd"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/sd"), "{}", stderr(&o));
    // A text encoder missing one tensor.
    let model = tmp.path().join("m");
    copy_dir(&fixtures().join("tiny-sd"), &model);
    let te = model.join("text_encoder/model.safetensors");
    let mut w = Weights::open(&te).unwrap();
    let shapes = w.shapes();
    let mut keep: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for (k, s) in shapes {
        if k != "final_layer_norm.bias" {
            let v = w.take_f32(&k, &s).unwrap();
            keep.push((k, s, v));
        }
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = keep
        .into_iter()
        .map(|(k, s, v)| (k, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(String, safetensors_view::View)> = bytes
        .iter()
        .map(|(k, s, b)| (k.clone(), safetensors_view::View::new(s.clone(), b.clone())))
        .collect();
    safetensors_view::write(&te, &views);
    let o = run(&model, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("text_encoder/model.safetensors") && e.contains("final_layer_norm.bias"),
        "{e}"
    );
    // Bad arguments.
    let o = run(&fixtures().join("tiny-sd"), &["--scheduler", "pndm"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&fixtures().join("tiny-sd"), &["--width", "33"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!out.exists(), "nothing is written on error");
}

/// Minimal F32 safetensors writer for the test (the root crate does not depend on
/// `safetensors`).
mod safetensors_view {
    use std::path::Path;

    pub struct View {
        shape: Vec<usize>,
        bytes: Vec<u8>,
    }

    impl View {
        pub fn new(shape: Vec<usize>, bytes: Vec<u8>) -> Self {
            Self { shape, bytes }
        }
    }

    pub fn write(path: &Path, tensors: &[(String, View)]) {
        let mut header = serde_json::Map::new();
        let mut offset = 0;
        for (k, v) in tensors {
            header.insert(
                k.clone(),
                serde_json::json!({
                    "dtype": "F32",
                    "shape": v.shape,
                    "data_offsets": [offset, offset + v.bytes.len()],
                }),
            );
            offset += v.bytes.len();
        }
        let mut h = serde_json::Value::Object(header).to_string().into_bytes();
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend(h);
        for (_, v) in tensors {
            out.extend(&v.bytes);
        }
        std::fs::write(path, out).unwrap();
    }
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
