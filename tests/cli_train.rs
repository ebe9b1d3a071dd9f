//! CLI-level tests of `unas train` at a toy budget, with the diffusers fixture
//! `tools/fixtures/pipeline/tiny-sd` as the teacher of a shallower student (BK-SDM-style:
//! initialised from the teacher by role, distilled): a run killed with SIGKILL at a random
//! moment and resumed ends with the same weights, bit for bit, as an uninterrupted one; its
//! U-Net folder loads in `unas generate`; bad inputs exit 2 with one clear error naming the
//! file and leave nothing written.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{root, text, unas_in, QUALITY};

/// tiny-sd (`tools/fixtures/pipeline/tiny-sd/unet`) with one ResNet (and attention) per down
/// block instead of two: a student its weights map onto by role.
const STUDENT: &str = r#"
name = "tiny-sd-student"
layout = "diffusers"

[stem]
in_channels = 4
out_channels = 4
base_channels = 8
time_embed_dim = 32
cross_attention_dim = 16
heads = 2
norm_groups = 4
norm_eps = 1e-5
attention_norm_eps = 1e-6
transformer_depth = 1
use_linear_projection = false
flip_sin_to_cos = true
freq_shift = 0.0

[[down]]
out_channels = 8
resnets = 1
attentions = 1
downsample = true

[[down]]
out_channels = 16
resnets = 1
attentions = 1
downsample = true

[[down]]
out_channels = 16
resnets = 1
attentions = 1
downsample = true

[[down]]
out_channels = 16
resnets = 1
attentions = 0
downsample = false

[mid]
resnets = 2
attentions = 1
upsample = false

[[up]]
resnets = 2
attentions = 0
upsample = true

[[up]]
resnets = 2
attentions = 2
upsample = true

[[up]]
resnets = 2
attentions = 2
upsample = true

[[up]]
resnets = 2
attentions = 2
upsample = false
"#;

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn bad(o: &Output, needle: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
}

fn train_args<'a>(teacher: &'a str, out: &'a str, steps: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--arch",
        "student.toml",
        "--config",
        "data.toml",
        "--teacher",
        teacher,
        "--steps",
        steps,
        "--batch",
        "2",
        "--checkpoint-every",
        "3",
        "--warmup-steps",
        "2",
        "--ema-fraction",
        "0.5",
        "--adherence",
        "0",
        "--out",
        out,
    ]
}

#[test]
fn train_distils_resumes_after_a_kill_and_refuses_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.toml"), QUALITY).unwrap();
    std::fs::write(d.join("student.toml"), STUDENT).unwrap();
    let teacher = root().join("tools/fixtures/pipeline/tiny-sd");
    let teacher = teacher.to_str().unwrap();
    let steps = "100";

    // Uninterrupted.
    let out = ok(&unas_in(d, &train_args(teacher, "whole", steps)));
    assert!(out.contains("whole"), "{out}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("whole/train.json")).unwrap())
            .unwrap();
    assert_eq!(info["steps"], 100);
    assert!(info["inherited"]["copied"].as_u64().unwrap() > 0, "{info}");
    assert!(
        info["feature_sections"].as_array().unwrap().len() >= 5,
        "the student has every section of the teacher: {info}"
    );
    for f in [
        "loss.csv",
        "loss.svg",
        "loss.png",
        "unet/config.json",
        "unet/weights.json",
    ] {
        assert!(d.join("whole").join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read_to_string(d.join("whole/loss.csv"))
            .unwrap()
            .lines()
            .count(),
        101
    );

    // Killed at a random moment after its first checkpoint, then resumed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_unas"))
        .args(train_args(teacher, "killed", steps))
        .current_dir(d)
        .env("UNAS_CACHE_DIR", d.join(".unas-cache"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let latest = d.join("killed/checkpoints/latest.json");
    let t0 = Instant::now();
    while !latest.exists() {
        assert!(t0.elapsed() < Duration::from_secs(300), "no checkpoint");
        std::thread::sleep(Duration::from_millis(5));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::thread::sleep(Duration::from_millis(u64::from(nanos % 200)));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the kill: give it more steps"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!d.join("killed/train.json").exists());
    // Without --resume the checkpoints are refused.
    bad(
        &unas_in(d, &train_args(teacher, "killed", steps)),
        "--resume",
    );
    let mut resume = train_args(teacher, "killed", steps);
    resume.push("--resume");
    ok(&unas_in(d, &resume));
    let resumed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("killed/train.json")).unwrap())
            .unwrap();
    let rest = resumed["steps_this_call"].as_u64().unwrap();
    assert!(rest > 0 && rest < 100, "{resumed}");
    let weights = |run: &str| {
        std::fs::read(d.join(run).join("unet/diffusion_pytorch_model.safetensors")).unwrap()
    };
    assert!(
        weights("whole") == weights("killed"),
        "resumed weights differ"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("whole/loss.csv")).unwrap(),
        std::fs::read_to_string(d.join("killed/loss.csv")).unwrap()
    );

    // The trained U-Net runs in the fixture pipeline in place of the teacher.
    let png = d.join("out.png");
    ok(&unas_in(
        d,
        &[
            "generate",
            "--model",
            teacher,
            "--unet",
            "whole/unet",
            "--prompt",
            "a red circle",
            "--steps",
            "2",
            "--out",
            png.to_str().unwrap(),
        ],
    ));
    assert!(png.is_file());

    // A unas-trained teacher names its data: on other data it is refused.
    std::fs::write(
        d.join("other.toml"),
        QUALITY.replace("images = 200", "images = 180"),
    )
    .unwrap();
    let mut args = train_args("whole/unet", "new", steps);
    args[4] = "other.toml";
    let o = unas_in(d, &args);
    bad(&o, "trained on");
    assert!(
        text(&o.stderr).contains("whole/unet"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.join("new").exists());

    // A corrupt checkpoint: named, exit 2.
    let ck = d.join("killed/checkpoints");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("latest.json")).unwrap()).unwrap();
    let step_dir = ck.join(format!("step-{}", state["step"]));
    std::fs::write(step_dir.join("weights.mpk"), b"not a checkpoint").unwrap();
    std::fs::remove_file(d.join("killed/train.json")).unwrap();
    bad(&unas_in(d, &resume), "weights.mpk");

    // Bad inputs: one error each, exit 2, nothing written.
    let fresh = |o: &Output, needle: &str| {
        bad(o, needle);
        assert!(!d.join("new").exists(), "something was written");
    };
    fresh(
        &unas_in(d, &train_args("no-such-teacher", "new", steps)),
        "no-such-teacher",
    );
    // tiny's cross-attention width (64) is not the fixture's (16).
    let mut args = train_args(teacher, "new", steps);
    args[2] = "tiny";
    fresh(&unas_in(d, &args), "config.json");
    // A negative loss weight.
    let mut args = train_args(teacher, "new", steps);
    args.extend_from_slice(&["--init", "scratch", "--distill-task=-1"]);
    fresh(&unas_in(d, &args), "distill.task");
    // An unwritable output (under a file).
    bad(
        &unas_in(d, &train_args(teacher, "data.toml/sub", steps)),
        "data.toml/sub",
    );
    fresh(
        &unas_in(d, &{
            let mut a = train_args(teacher, "new", steps);
            a.extend_from_slice(&["--device", "cuda"]);
            a
        }),
        "cuda",
    );
}

#[test]
fn train_measures_prompt_adherence_and_writes_sample_grids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.toml"), QUALITY).unwrap();
    ok(&unas_in(
        d,
        &[
            "train",
            "--arch",
            "tiny",
            "--config",
            "data.toml",
            "--steps",
            "3",
            "--batch",
            "2",
            "--ema-fraction",
            "0",
            "--adherence",
            "16",
            "--sampling-steps",
            "2",
            "--out",
            "run",
        ],
    ));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/train.json")).unwrap()).unwrap();
    let adh = &info["adherence"];
    assert_eq!(adh["samples"], 16, "{info}");
    let per = adh["per_attribute"].as_object().unwrap();
    assert!(
        per.contains_key("colour") && per.contains_key("shape"),
        "{per:?}"
    );
    assert!(per
        .values()
        .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap())));
    assert!(info["inherited"].is_null() && info["teacher"].is_null());
    for f in ["samples.png", "real.png", "samples.txt"] {
        let p: &Path = &d.join("run").join(f);
        assert!(p.is_file(), "{f}");
    }
    // The PNG header's size: 16 images in 2 rows of 8 cells.
    let png = std::fs::read(d.join("run/samples.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (w, h) = (be(&png[16..20]), be(&png[20..24]));
    assert_eq!((w - 2) / 8, (h - 2) / 2, "{w}x{h}");
}

/// The full-scale path at toy scale: data encoded by the teacher pipeline's own VAE and text
/// encoder (`[quality] pipeline = tiny-sd`), the student distilled from that pipeline's U-Net
/// without the "assumed to share its latent space" warning, and a pipeline folder out that
/// carries the teacher's VAE, text encoder and tokenizer and runs in `unas generate`.
#[test]
fn train_on_data_encoded_by_the_teacher_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let teacher = root().join("tools/fixtures/pipeline/tiny-sd");
    let data = QUALITY.replace(
        "[quality.recipe]",
        &format!("pipeline = \"{}\"\n\n[quality.recipe]", teacher.display()),
    );
    std::fs::write(d.join("data.toml"), data).unwrap();
    std::fs::write(d.join("student.toml"), STUDENT).unwrap();
    let teacher = teacher.to_str().unwrap();
    let o = unas_in(d, &train_args(teacher, "m", "20"));
    ok(&o);
    let err = text(&o.stderr);
    assert!(!err.contains("does not record"), "{err}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("m/train.json")).unwrap()).unwrap();
    assert!(
        info["data"].as_str().unwrap().contains("text [77, 16]"),
        "the teacher's CLIP embeddings: {info}"
    );
    for f in [
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
    ] {
        assert_eq!(
            std::fs::read(d.join("m").join(f)).unwrap(),
            std::fs::read(Path::new(teacher).join(f)).unwrap(),
            "{f}: the teacher pipeline's"
        );
    }
    assert!(d.join("m/model_index.json").is_file());
    ok(&unas_in(
        d,
        &[
            "generate",
            "--model",
            "m",
            "--prompt",
            "a small red circle",
            "--steps",
            "2",
            "--out",
            "m.png",
        ],
    ));
    assert!(d.join("m.png").is_file());
    // A student whose text width is not the pipeline's: one error naming the field, exit 2.
    std::fs::write(
        d.join("student.toml"),
        STUDENT.replace("cross_attention_dim = 16", "cross_attention_dim = 32"),
    )
    .unwrap();
    let o = unas_in(d, &train_args(teacher, "bad", "20"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("quality.pipeline"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.join("bad").exists(), "nothing written");
}
