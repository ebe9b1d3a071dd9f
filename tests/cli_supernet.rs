//! CLI-level tests of `unas supernet` (list, train, resume, score) and of a search on the
//! supernet objective, at a tiny budget (a 3-step supernet of `tiny-depth`'s diffusers
//! topology on 200 built-in images, in a private cache).

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::process::Output;

use common::{root, text, unas_in, QUALITY};

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

#[test]
fn train_resume_score_and_search_on_a_supernet() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data.toml"), QUALITY).unwrap();

    let out = ok(&unas_in(d, &["supernet", "list", "--space", "tiny-depth"]));
    assert!(
        out.contains("diffusers-32-64-64-64") && out.contains("flexible-32-64-64-64"),
        "{out}"
    );

    // Bad input: one clear error each, exit 2.
    let o = unas_in(
        d,
        &[
            "supernet",
            "train",
            "--space",
            "tiny-depth",
            "--topology",
            "nope",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nope"), "{}", text(&o.stderr));
    let o = unas_in(
        d,
        &[
            "supernet",
            "train",
            "--space",
            "tiny-depth",
            "--device",
            "cuda",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).to_lowercase().contains("cuda"),
        "{}",
        text(&o.stderr)
    );

    let train = [
        "supernet",
        "train",
        "--space",
        "tiny-depth",
        "--topology",
        "diffusers-32-64-64-64",
        "--config",
        "data.toml",
        "--steps",
        "3",
        "--batch",
        "2",
        "--random-subnets",
        "1",
        "--checkpoint-every",
        "2",
        // 3 steps are too few for an EMA (at least 10 iterates).
        "--ema-fraction",
        "0",
        "--out",
        "sn/diffusers",
    ];
    ok(&unas_in(d, &train));
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("sn/diffusers/supernet.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(info["topology"], "diffusers-32-64-64-64");
    assert_eq!(info["steps"], 3);
    assert!(info["settings_hash"].as_str().unwrap().len() == 16);
    // The same command again: nothing to do.
    let again = ok(&unas_in(d, &train));
    assert!(again.contains("already trained"), "{again}");

    // Scores: deterministic, and an arch of another topology is refused.
    let score_with = |arch: &str, extra: &[&str]| {
        let mut args = vec![
            "supernet",
            "score",
            "--supernet",
            "sn/diffusers",
            "--arch",
            arch,
            "--config",
            "data.toml",
            "--json",
        ];
        args.extend_from_slice(extra);
        unas_in(d, &args)
    };
    let score = |arch: &str| score_with(arch, &[]);
    // After 2 fine-tuning steps: the same bits from two processes, and another number.
    let f1: serde_json::Value =
        serde_json::from_str(&ok(&score_with("tiny", &["--finetune", "2"]))).unwrap();
    let f2: serde_json::Value =
        serde_json::from_str(&ok(&score_with("tiny", &["--finetune", "2"]))).unwrap();
    assert_eq!(f1["val_loss"], f2["val_loss"]);
    assert_eq!(f1["finetune_steps"], 2);
    let a: serde_json::Value = serde_json::from_str(&ok(&score("tiny"))).unwrap();
    let b: serde_json::Value = serde_json::from_str(&ok(&score("tiny"))).unwrap();
    assert_eq!(a["val_loss"], b["val_loss"]);
    assert!(a["val_loss"].as_f64().unwrap().is_finite());
    assert_ne!(a["val_loss"], f1["val_loss"]);
    assert_eq!(a["bands"].as_array().unwrap().len(), 2);
    let o = score("tiny-nas");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("supernet"), "{}", text(&o.stderr));

    // A second seed of the same topology: a folder holding both scores their mean.
    let mut second = train.to_vec();
    let at = second.len() - 1;
    second[at] = "sn/diffusers-seed1";
    second.extend_from_slice(&["--seed", "1"]);
    ok(&unas_in(d, &second));
    let single = |dir: &str| -> f64 {
        let o = unas_in(
            d,
            &[
                "supernet",
                "score",
                "--supernet",
                dir,
                "--arch",
                "tiny",
                "--config",
                "data.toml",
                "--json",
            ],
        );
        let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
        v["val_loss"].as_f64().unwrap()
    };
    let (s0, s1, both) = (
        single("sn/diffusers"),
        single("sn/diffusers-seed1"),
        single("sn"),
    );
    assert_ne!(s0, s1, "two seeds give two supernets");
    assert!(
        (both - (s0 + s1) / 2.0).abs() <= 1e-12 * s0.abs(),
        "ensemble {both} is not the mean of {s0} and {s1}"
    );
    let o = unas_in(
        d,
        &[
            "supernet",
            "score",
            "--supernet",
            "sn",
            "--arch",
            "tiny",
            "--config",
            "data.toml",
        ],
    );
    assert!(
        ok(&o).contains("mean over 2 supernets"),
        "{}",
        text(&o.stdout)
    );

    // `--from` a trained supernet (few-shot NAS's split step): the child starts as the
    // parent's sub-network (here: the whole of it), so after one step at a negligible learning
    // rate it scores what the parent scores; its `from` names the parent by settings hash and
    // seed, not by folder. A topology whose covering architecture is not a sub-network of the
    // parent is refused before any training.
    let mut child = train.to_vec();
    let steps_at = child.iter().position(|a| *a == "--steps").unwrap() + 1;
    child[steps_at] = "1";
    let at = child.len() - 1;
    child[at] = "child";
    child.extend_from_slice(&["--lr", "1e-12", "--from", "sn/diffusers"]);
    ok(&unas_in(d, &child));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("child/supernet.json")).unwrap())
            .unwrap();
    let parent: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("sn/diffusers/supernet.json")).unwrap(),
    )
    .unwrap();
    let from = info["from"].as_str().unwrap();
    assert!(
        from.contains(parent["settings_hash"].as_str().unwrap()) && !from.contains("sn/"),
        "{from}"
    );
    let c = single("child");
    assert!(
        (c - s0).abs() <= 1e-5 * s0.abs() && (s1 - s0).abs() > 100.0 * (c - s0).abs(),
        "child {c}, parent {s0}, another seed {s1}"
    );
    let mut wrong = child.clone();
    let t_at = wrong.iter().position(|a| *a == "--topology").unwrap() + 1;
    wrong[t_at] = "flexible-32-64-64-64";
    let at = wrong.iter().position(|a| *a == "child").unwrap();
    wrong[at] = "child-flexible";
    let o = unas_in(d, &wrong);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("not one of its sub-networks")
            && text(&o.stderr).contains("supernet.json"),
        "{}",
        text(&o.stderr)
    );
    assert!(!d.join("child-flexible").exists(), "nothing written");

    // A search of the diffusers-layout candidates on the supernet objective.
    let space = std::fs::read_to_string(root().join("configs/spaces/tiny-depth.toml"))
        .unwrap()
        .replace(
            "layouts = [\"diffusers\", \"flexible\"]",
            "layouts = [\"diffusers\"]",
        );
    std::fs::write(d.join("space.toml"), space).unwrap();
    let study = |objective: &str| {
        let text = format!(
            r#"
name = "sn"
space = "space.toml"
trials = 4
seed = 0
jobs = 1
references = ["tiny"]

[controller]
kind = "random"

[latency]
model = "lut:{lut}"
budget_ms = 1000.0
latent = 16
batch = 2
text_len = 16
dtype = "f32"
{QUALITY}"#,
            lut = root().join("configs/devices/cpu-tiny.lut.toml").display()
        );
        // `objective`/`supernets` belong to [quality]: put them before its sub-table.
        text.replace(
            "\n[quality.recipe]\n",
            &format!("{objective}\nsupernets = \"sn\"\n\n[quality.recipe]\n"),
        )
    };
    let search = |name: &str, objective: &str| {
        std::fs::write(d.join(format!("{name}.toml")), study(objective)).unwrap();
        let o = unas_in(
            d,
            &[
                "search",
                "--config",
                &format!("{name}.toml"),
                "--out",
                name,
                "--quiet",
            ],
        );
        ok(&o);
        std::fs::read_to_string(d.join(name).join("report.md")).unwrap()
    };
    let report = search("zero-shot", "objective = \"supernet-val-loss\"");
    assert!(report.contains("supernet-val-loss"), "{report}");
    // `unas report --samples` draws them again (e.g. after external workers).
    let samples = d.join("zero-shot/samples");
    std::fs::remove_dir_all(&samples).unwrap();
    let out = ok(&unas_in(d, &["report", "zero-shot", "--samples"]));
    assert!(samples.join("index.json").is_file(), "{out}");
    browser::sample_grids_show_in_the_report_and_the_dashboard(&d.join("zero-shot"));
    export_with_weights(d);
    train_from_run(d);
    // Scored after 2 fine-tuning steps from the inherited weights.
    let report = search(
        "finetuned",
        "objective = \"supernet-finetune\"\nfinetune_steps = 2",
    );
    assert!(report.contains("supernet-finetune@2"), "{report}");
    // Scored by the paired distance to the largest network, candidates sampling 3 steps.
    let report = search(
        "paired",
        "objective = \"supernet-paired\"\npaired_steps = 3",
    );
    assert!(
        report.contains("supernet-paired@3") && report.contains("largest network"),
        "{report}"
    );
    // Its export carries the weights it scored: fine-tuned 2 steps, the same in every run.
    let export_ft = |out: &str| {
        ok(&unas_in(
            d,
            &[
                "export",
                "finetuned",
                "--pick",
                "knee",
                "--weights",
                "--out",
                out,
            ],
        ))
    };
    export_ft("ft1");
    export_ft("ft2");
    let provenance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ft1/unet/weights.json")).unwrap())
            .unwrap();
    assert!(
        provenance["weights"]
            .as_str()
            .unwrap()
            .contains("fine-tuned 2 steps"),
        "{provenance}"
    );
    let weights = |dir: &str| {
        std::fs::read(d.join(dir).join("unet/diffusion_pytorch_model.safetensors")).unwrap()
    };
    assert_eq!(weights("ft1"), weights("ft2"), "deterministic");
    {
        use burn::backend::Flex;
        use unas_evaluator::quality::supernet_store;
        use unas_runtime::pipeline::stable_diffusion::read_unet_arch;
        use unas_runtime::save::float_params;
        use unas_runtime::{SubNet, UNet2DConditionModel};
        let dir = d.join("ft1/unet");
        let arch = read_unet_arch(&dir.join("config.json")).unwrap();
        let file = dir.join("diffusion_pytorch_model.safetensors");
        let unet = UNet2DConditionModel::<Flex>::load(&arch, &file, &Default::default()).unwrap();
        let (info, supernet) = supernet_store::load(&d.join("sn/diffusers")).unwrap();
        let zero_shot = SubNet::new(&arch, &info.arch).unwrap().extract(&supernet);
        assert_ne!(
            float_params(&unet),
            float_params(&zero_shot),
            "not the zero-shot weights"
        );
    }
}

/// `unas export --weights` after the zero-shot search in `d`: the knee's weights, inherited
/// from the first supernet of the study's folder (`sn/diffusers`, sorted first), as a diffusers
/// U-Net folder that loads back to exactly that sub-network's weights; bad input exits 2.
fn export_with_weights(d: &std::path::Path) {
    use burn::backend::Flex;
    use unas_evaluator::quality::supernet_store;
    use unas_runtime::pipeline::stable_diffusion::read_unet_arch;
    use unas_runtime::save::float_params;
    use unas_runtime::{SubNet, UNet2DConditionModel};

    let export = |extra: &[&str]| {
        let mut args = vec!["export", "zero-shot", "--pick", "knee", "--out", "exp"];
        args.extend_from_slice(extra);
        unas_in(d, &args)
    };
    let out = ok(&export(&["--weights"]));
    assert!(out.contains("weights inherited from"), "{out}");
    let dir = d.join("exp/unet");
    let arch = read_unet_arch(&dir.join("config.json")).unwrap();
    let picked = unas_space::load_arch(d.join("exp/unet-nas.toml").to_str().unwrap()).unwrap();
    assert_eq!(arch.hash_id(), picked.hash_id());
    let device = Default::default();
    let file = dir.join("diffusion_pytorch_model.safetensors");
    let unet = UNet2DConditionModel::<Flex>::load(&arch, &file, &device).unwrap();
    let (info, supernet) = supernet_store::load(&d.join("sn/diffusers")).unwrap();
    let sub = SubNet::new(&arch, &info.arch).unwrap().extract(&supernet);
    assert_eq!(
        float_params(&unet),
        float_params(&sub),
        "the inherited weights"
    );
    let provenance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("weights.json")).unwrap()).unwrap();
    assert_eq!(provenance["supernet"]["settings_hash"], info.settings_hash);
    assert_eq!(provenance["arch"], arch.hash_id());
    // A complete diffusers pipeline folder: the data's VAE, CLIP text encoder and tokenizer,
    // the recipe's DDIM; `unas generate --model` turns it into a PNG.
    for f in [
        "model_index.json",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "tokenizer/vocab.json",
        "tokenizer/merges.txt",
        "tokenizer/tokenizer_config.json",
        "scheduler/scheduler_config.json",
    ] {
        assert!(d.join("exp").join(f).is_file(), "exp/{f} written");
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("exp/model_index.json")).unwrap())
            .unwrap();
    assert_eq!(index["unet"][1], "UNet2DConditionModel");
    let sched: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("exp/scheduler/scheduler_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sched["_class_name"], "DDIMScheduler");
    assert_eq!(sched["timestep_spacing"], "trailing");
    assert_eq!(sched["rescale_betas_zero_snr"], true);
    let text_config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("exp/text_encoder/config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(text_config["vocab_size"], 49408, "CLIP's BPE vocabulary");
    let o = unas_in(
        d,
        &[
            "generate",
            "--model",
            "exp",
            "--prompt",
            "a small red circle in the centre on a white background",
            "--steps",
            "3",
            "--guidance",
            "3",
            "--out",
            "exp.png",
        ],
    );
    ok(&o);
    let png = std::fs::read(d.join("exp.png")).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().unwrap();
    let info = reader.info();
    assert_eq!((info.width, info.height), (32, 32), "the data's image size");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let (lo, hi) = (buf.iter().min().unwrap(), buf.iter().max().unwrap());
    assert!(hi > lo, "a non-constant image");
    let left: Vec<_> = std::fs::read_dir(d.join("exp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "no temporary folder left");

    // Bad input: one clear error each, exit 2.
    let o = export(&["--weights", "--supernet", "nowhere"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nowhere"), "{}", text(&o.stderr));
    let o = export(&["--supernet", "sn"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("--weights"), "{}", text(&o.stderr));
    // A folder without a trained supernet holds nothing.
    std::fs::create_dir_all(d.join("empty")).unwrap();
    let o = export(&["--weights", "--supernet", "empty"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("no supernet"),
        "{}",
        text(&o.stderr)
    );
}

/// `unas train --from-run` after the zero-shot search in `d`: the knee, on the study's data,
/// starting from the supernet weights the search scored it with; a pipeline folder out.
fn train_from_run(d: &std::path::Path) {
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--from-run",
            "zero-shot",
            "--steps",
            "2",
            "--batch",
            "2",
            "--ema-fraction",
            "0",
            "--adherence",
            "0",
        ];
        args.extend_from_slice(extra);
        unas_in(d, &args)
    };
    ok(&train(&["--out", "from-run"]));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("from-run/train.json")).unwrap())
            .unwrap();
    let knee = unas_space::load_arch(d.join("exp/unet-nas.toml").to_str().unwrap()).unwrap();
    assert_eq!(summary["arch"], knee.hash_id(), "the run's knee");
    assert!(
        summary["arch_source"].as_str().unwrap().contains("(knee)"),
        "{summary}"
    );
    assert!(
        summary["init"]
            .as_str()
            .unwrap()
            .starts_with("supernet diffusers-32-64-64-64"),
        "initialised from the study's supernet: {summary}"
    );
    assert_eq!(summary["inherited"]["fresh"], 0, "every tensor inherited");
    assert!(d.join("from-run/model_index.json").is_file());
    // Bad input: exit 2, nothing written.
    for (extra, needle) in [
        (&["--pick", "nope", "--out", "bad1"][..], "--pick"),
        (&["--arch", "tiny", "--out", "bad2"][..], "--arch"),
    ] {
        let o = train(extra);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
        assert!(text(&o.stderr).contains(needle), "{}", text(&o.stderr));
    }
    let o = unas_in(
        d,
        &[
            "train",
            "--from-run",
            "nowhere",
            "--steps",
            "2",
            "--out",
            "bad3",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("nowhere"), "{}", text(&o.stderr));
    for f in ["bad1", "bad2", "bad3"] {
        assert!(!d.join(f).exists(), "{f}: nothing written");
    }
}

/// The shipped artifacts load with this build (burn records follow the module structs: a
/// changed layer would fail to load or, worse, keep random weights) and score what the
/// calibration recorded: the shipped supernet (seed 1 of `docs/calibration/sn300-seeds/`) on
/// the shipped prepared data (small VAE, latents, extractor) gives the committed validation
/// loss of a calibration architecture.
#[test]
fn shipped_supernet_and_data_score_the_committed_calibration_value() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cal = root().join("docs/calibration/sn300-seeds");
    let arch_file = cal.join("archs/00-9bbfd5c0b3c7deba.toml");
    let recorded = recorded_score(&cal, "supernet-val-loss");
    let shipped = shipped_supernet();
    let config = root().join("configs/quickstart.toml");
    let score = |dir: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_unas"))
            .current_dir(dir)
            .env("UNAS_CACHE_DIR", d.join(".unas-cache"))
            .args(["supernet", "score", "--json"])
            .arg("--supernet")
            .arg(&shipped)
            .arg("--arch")
            .arg(&arch_file)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run unas")
    };
    // From the repository root, where the config's `prepared = "configs/data"` is.
    let out = ok(&score(&root()));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let got = json["val_loss"].as_f64().unwrap();
    // Run elsewhere, the config's relative `prepared` folder is not found: an input error
    // naming it, not a silent preparation of other data.
    let o = score(d);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("quality.prepared") && err.contains("configs/data"),
        "{err}"
    );
    assert!(
        (got - recorded).abs() <= 1e-5 * recorded,
        "scored {got}, calibration recorded {recorded}"
    );
}

/// `unas supernet score --paired-steps K` on the shipped supernet and data: the largest
/// network compared with itself at the reference's 50 steps is at distance 0, and at 10 steps
/// it is not (the step count enters the score); a calibration architecture's distance is
/// the one `unas quality calibrate --paired-steps 50` committed for it (another process,
/// another build: nothing memoised).
#[test]
fn paired_distance_is_zero_for_the_largest_at_its_own_steps() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let shipped = shipped_supernet();
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("supernet.json")).unwrap())
            .unwrap();
    let covering: unas_space::UNetArch = serde_json::from_value(info["arch"].clone()).unwrap();
    let largest = d.join("largest.toml");
    std::fs::write(&largest, toml::to_string(&covering).unwrap()).unwrap();
    let cal = root().join("docs/calibration/sn300-seeds");
    let recorded = recorded_score(&cal, "supernet-paired@50");
    let paired = |arch: &std::path::Path, steps: &str| -> Vec<(f64, String)> {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_unas"))
            .current_dir(root())
            .env("UNAS_CACHE_DIR", d.join(".unas-cache"))
            .args(["supernet", "score", "--json", "--paired-steps", steps])
            .arg("--supernet")
            .arg(&shipped)
            .arg("--arch")
            .arg(arch)
            .arg("--config")
            .arg(root().join("configs/quickstart.toml"))
            .output()
            .expect("run unas");
        let json: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
        json["paired"]
            .as_array()
            .expect("paired")
            .iter()
            .map(|p| {
                (
                    p["distance"].as_f64().unwrap(),
                    p["metric"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let got = paired(&largest, "50,10");
    let (same, label) = &got[0];
    assert_eq!(*same, 0.0, "{label}");
    assert!(
        label.starts_with("supernet-paired@50[48 samples") && label.contains("at 50 steps"),
        "{label}"
    );
    let (truncated, label) = &got[1];
    assert!(*truncated > 0.0 && truncated.is_finite(), "{truncated}");
    assert!(label.starts_with("supernet-paired@10["), "{label}");
    let smaller = cal.join("archs/00-9bbfd5c0b3c7deba.toml");
    let (a, _) = &paired(&smaller, "50")[0];
    assert!(*a > 0.0, "{a}");
    assert!(
        (a - recorded).abs() <= 1e-5 * recorded,
        "scored {a}, calibration recorded {recorded}"
    );
}

/// The supernet shipped in `configs/supernets/tiny-depth/` (its folder).
fn shipped_supernet() -> std::path::PathBuf {
    std::fs::read_dir(root().join("configs/supernets/tiny-depth"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("supernet.json").is_file())
        .expect("a shipped supernet")
}

/// The committed score of `proxy` for calibration architecture `9bbfd5c0b3c7deba` on the
/// shipped supernet (seed 1) in the calibration folder `cal`.
fn recorded_score(cal: &std::path::Path, proxy: &str) -> f64 {
    let prefix = format!("9bbfd5c0b3c7deba,{proxy},1,");
    std::fs::read_to_string(cal.join("proxy_scores.csv"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_string))
        .expect("seed 1's row")
        .parse()
        .unwrap()
}
