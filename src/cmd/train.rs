//! `unas train`: trains one architecture (a search's pick) to a finished model — from
//! scratch, from a teacher's or a supernet's weights mapped by role, optionally distilled
//! from a teacher (BK-SDM) — with checkpoints, a loss curve, a diffusers pipeline folder of
//! the model and a measure of prompt adherence on the built-in data.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use indicatif::ProgressBar;
use unas_evaluator::quality::proxy::{open_dataset, Proxy, ProxyConfig};
use unas_evaluator::quality::supernet::{StepInfo, TrainData};
use unas_evaluator::quality::supernet_store;
use unas_evaluator::quality::train_model::{
    settings_hash, train_model, ModelTrainSettings, Teacher, TrainedModel,
};
use unas_evaluator::EvalError;
use unas_reports::Pick;
use unas_runtime::device::{Cpu, Device};
use unas_runtime::{RoleWeights, SubNet, UNet2DConditionModel};
use unas_space::{load_arch, UNetArch};

use super::pipeline_folder::unet_folder;
use super::progress::{say, step_logger, steps_bar};
use super::quality::{prepare, DataArgs};
use super::{CliError, CmdResult};

/// `unas train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Architecture to train: preset or unas TOML file (e.g. a search's `unet-nas.toml`).
    #[arg(
        long,
        required_unless_present = "from_run",
        conflicts_with = "from_run"
    )]
    arch: Option<String>,
    /// A search's run folder: trains its pick (`--pick`) on the study's data (its `[quality]`
    /// settings, unless --config), starting from the weights the search scored it with (the
    /// study's supernet holding it, when it has supernets and neither --init nor --teacher is
    /// given).
    #[arg(long)]
    from_run: Option<PathBuf>,
    /// Which trial of --from-run: knee, fastest, best-under:MS or a trial number.
    #[arg(long, default_value = "knee", requires = "from_run")]
    pick: String,
    #[command(flatten)]
    data: DataArgs,
    /// Teacher to distil from (BK-SDM: task + output + per-section feature loss): a diffusers
    /// U-Net folder (`config.json` + `diffusion_pytorch_model.safetensors`), a folder holding
    /// one in `unet/` or `flexible_unet/` (a pipeline, a `unas train` output), or a trained
    /// supernet folder (`supernet.json`; the teacher is its covering network).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Where the weights start: `teacher` (the teacher's, mapped by role where shapes match;
    /// the default with --teacher), `scratch` (the default without), or a folder as for
    /// --teacher (from a supernet folder: the sub-network the arch is of it).
    #[arg(long)]
    init: Option<String>,
    /// Optimiser steps.
    #[arg(long, default_value_t = 1000)]
    steps: usize,
    /// Minibatch.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Peak learning rate (warm-up, then cosine decay to 0).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Warm-up steps of the learning rate.
    #[arg(long, default_value_t = 30)]
    warmup_steps: usize,
    /// EMA of the weights over this last fraction of the steps (0 = none).
    #[arg(long, default_value_t = 0.5)]
    ema_fraction: f64,
    /// Min-SNR-γ loss weights (Hang et al. 2023; for v-prediction min(SNR, γ) / (SNR + 1),
    /// near 0 at the highest noise levels, where a sample's layout is decided); 0 = plain MSE,
    /// with which the built-in shapes' samples follow the prompted shape and position within
    /// 6000 steps (docs/train.md).
    #[arg(long, default_value_t = 5.0)]
    min_snr_gamma: f64,
    /// Seed of the initialisation and of every step's draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint every N steps (and at the end).
    #[arg(long, default_value_t = 100)]
    checkpoint_every: usize,
    /// Weight of the task (denoising) loss when distilling.
    #[arg(long, default_value_t = 1.0)]
    distill_task: f64,
    /// Weight of the output loss ‖student − teacher‖² when distilling.
    #[arg(long, default_value_t = 1.0)]
    distill_output: f64,
    /// Weight of the feature loss (sections both networks have, same shape) when distilling.
    #[arg(long, default_value_t = 1.0)]
    distill_feature: f64,
    /// Continue the run whose checkpoints are in OUT (after an interruption or a kill).
    #[arg(long)]
    resume: bool,
    /// Images sampled at the end to measure prompt adherence with the data's feature
    /// extractor (0 = none).
    #[arg(long, default_value_t = 256)]
    adherence: usize,
    /// DDIM steps of those samples (default: the data settings').
    #[arg(long)]
    sampling_steps: Option<usize>,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output folder, a diffusers pipeline folder when done (`unas generate --model DIR`):
    /// `model_index.json`, the U-Net (`unet/` or `flexible_unet/`), the data's `vae/`,
    /// `text_encoder/`, `tokenizer/` and `scheduler/`; beside them `checkpoints/`, `loss.csv`,
    /// `loss.svg/png`, `train.json`, and with --adherence `samples.png`, `real.png` (the real
    /// images of the same prompts), `vae.png` (their latents decoded by the data's VAE) and
    /// `samples.txt` (the prompts).
    #[arg(long)]
    out: PathBuf,
}

fn settings(a: &TrainArgs) -> ModelTrainSettings {
    let mut s = ModelTrainSettings {
        steps: a.steps,
        batch: a.batch,
        checkpoint_every: a.checkpoint_every,
        seed: a.seed,
        ..ModelTrainSettings::default()
    };
    s.recipe.lr = a.lr;
    s.recipe.warmup_steps = a.warmup_steps;
    s.recipe.ema_fraction = a.ema_fraction;
    s.recipe.min_snr_gamma = (a.min_snr_gamma != 0.0).then_some(a.min_snr_gamma);
    s.distill.task = a.distill_task;
    s.distill.output = a.distill_output;
    s.distill.feature = a.distill_feature;
    s
}

/// Runs `unas train`.
pub fn run(a: TrainArgs) -> CmdResult {
    // Every input is checked before anything is written.
    let run = a
        .from_run
        .as_deref()
        .map(|d| from_run(d, &a.pick))
        .transpose()?;
    let (arch, arch_source) = match (&run, &a.arch) {
        (Some(r), _) => (r.arch.clone(), r.label.clone()),
        (None, Some(spec)) => (load_arch(spec)?, spec.clone()),
        (None, None) => return Err(CliError::input("--arch or --from-run is required")),
    };
    let device: Device = a.device.parse().map_err(CliError::input)?;
    device.check().map_err(CliError::input)?;
    if !(a.min_snr_gamma >= 0.0 && a.min_snr_gamma.is_finite()) {
        return Err(CliError::input(
            "--min-snr-gamma: a number ≥ 0 (0 = plain MSE)",
        ));
    }
    let s = settings(&a);
    s.check().map_err(CliError::input)?;
    let teacher = a
        .teacher
        .as_deref()
        .map(|d| read_source("--teacher", d))
        .transpose()?;
    let mut init_source: Option<Source> = None;
    // From a run: the study's supernet holding the pick, unless told otherwise.
    let run_init = match (&run, a.init.as_deref(), &teacher) {
        (Some(r), None, None) => r.supernet.as_ref().map(|d| d.to_string_lossy().to_string()),
        _ => None,
    };
    let init: Option<(RoleWeights, String)> =
        match (run_init.as_deref().or(a.init.as_deref()), &teacher) {
            (Some("scratch"), _) | (None, None) => None,
            (Some("teacher") | None, Some(t)) => Some((
                init_weights(&arch, t, "--teacher")?,
                format!("teacher: {}", t.label),
            )),
            (Some("teacher"), None) => {
                return Err(CliError::input("--init teacher: needs --teacher DIR"));
            }
            (Some(dir), _) => {
                let src = read_source("--init", Path::new(dir))?;
                let w = init_weights(&arch, &src, "--init")?;
                let label = src.label.clone();
                init_source = Some(src);
                Some((w, label))
            }
        };
    let mut cfg = match &run {
        Some(r) => a.data.resolve_over(r.quality.clone())?,
        None => a.data.resolve()?,
    };
    if a.adherence > 0 {
        // The fixed prompts are the first `samples` draws; more of them, the same data.
        cfg.samples = a.adherence.max(2);
    }
    if let Some(k) = a.sampling_steps {
        if k == 0 {
            return Err(CliError::input("--sampling-steps: at least 1"));
        }
        cfg.sampling_steps = k;
    }
    let proxy = prepare(&cfg, arch.stem.cross_attention_dim)?;
    proxy
        .check_arch(&arch)
        .map_err(|e| CliError::input(format!("--arch {arch_source}: {e}")))?;
    if let Some(t) = &teacher {
        check_teacher(&arch, t, &proxy)?;
    }
    // Checked now, not after the training: whether the data's captions fit CLIP's tokenizer.
    let text = super::pipeline_folder::text_side(&proxy)
        .map_err(|e| eprintln!("warning: {e}: the output gets the U-Net folder only"))
        .ok();
    let data_label = proxy.describe_data();
    for (flag, src) in [
        ("--teacher", teacher.as_ref()),
        ("--init", init_source.as_ref()),
    ] {
        let Some(src) = src else { continue };
        match &src.data {
            Some(d) if *d != data_label => {
                return Err(CliError::input(format!(
                    "{flag} {}: trained on {d}, this data is {data_label}",
                    src.dir.display()
                )));
            }
            Some(_) => {}
            // The data was encoded by this pipeline's own VAE and text encoder.
            None if pipeline_of(&src.dir, cfg.pipeline.as_deref()) => {}
            None => eprintln!(
                "warning: {flag} {} does not record its training data: its latents and text \
                 embeddings are assumed to be this data's ({data_label}); see docs/train.md",
                src.dir.display()
            ),
        }
    }
    if let Some((w, label)) = &init {
        // Nothing of the start maps onto the student: the folder is of another network.
        let device = Default::default();
        let fresh = UNet2DConditionModel::<Cpu>::init(&arch, &device).map_err(CliError::failure)?;
        let (_, stats) = w.inherit(&arch, fresh).map_err(CliError::failure)?;
        if stats.copied == 0 {
            return Err(CliError::input(format!(
                "--init/--teacher ({label}): no tensor has the role and shape of one of the \
                 student's; train from scratch with --init scratch"
            )));
        }
    }
    let ck_dir = a.out.join("checkpoints");
    let has_checkpoint = ck_dir.join("latest.json").exists();
    if has_checkpoint && !a.resume {
        return Err(CliError::input(format!(
            "{}: holds a run's checkpoints; pass --resume to continue it, or choose another --out",
            ck_dir.display()
        )));
    }
    if !has_checkpoint && a.out.join("train.json").exists() {
        return Err(CliError::input(format!(
            "{}: holds a finished run; choose another --out",
            a.out.join("train.json").display()
        )));
    }
    std::fs::create_dir_all(&ck_dir)
        .map_err(|e| CliError::input(format!("--out {}: {e}", ck_dir.display())))?;

    let teacher_label = teacher.as_ref().map(|t| t.label.clone());
    let hash = settings_hash(
        &arch,
        &s,
        &data_label,
        init.as_ref().map(|i| i.1.as_str()),
        teacher_label.as_deref(),
    );
    let bar = steps_bar(s.steps, arch.hash_id());
    if has_checkpoint {
        say(&bar, format!("resuming from {}", ck_dir.display()));
    }
    let t0 = Instant::now();
    let mut on_step = step_logger(&bar, String::new());
    let data = TrainData {
        cache: proxy.cache(),
        uncond: proxy.uncond(),
        train_items: proxy.train_items(),
    };
    let job = Job {
        arch: &arch,
        data: &data,
        data_label: &data_label,
        settings: &s,
        init: init.as_ref().map(|(w, l)| (w, l.as_str())),
        teacher: teacher.as_ref(),
        dir: &ck_dir,
    };
    let trained = job.run(device, &mut on_step)?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    say(
        &bar,
        format!(
            "{}: {} steps in {secs:.0} s ({} run now), loss of the last 5 %: {:.4}",
            arch.hash_id(),
            s.steps,
            trained.steps_run,
            tail_mean(&trained.losses)
        ),
    );

    write_loss_files(&a.out, &trained.losses, &arch)?;
    let provenance = serde_json::json!({
        "arch": arch.hash_id(),
        "weights": "trained by unas train",
        "settings_hash": hash,
        "data": data_label,
        "init": init.as_ref().map(|i| i.1.clone()),
        "teacher": teacher_label,
        "unas": env!("CARGO_PKG_VERSION"),
    });
    let unet_dir = super::pipeline_folder::write_pipeline_folder(
        &arch,
        &trained.unet,
        &provenance,
        &proxy,
        text.as_ref(),
        &a.out,
    )?;

    // The proxy's deterministic validation loss (held-out latents, fixed timesteps and noise):
    // comparable across runs on the same data.
    let val = proxy.validation_set();
    let t_val = Instant::now();
    let vl = val.loss::<Cpu>(&s.recipe, 64, &Default::default(), &|x, t, c| {
        trained.unet.forward(x, t, c)
    });
    say(
        &bar,
        format!(
            "validation loss {:.5} ({}, {:.0} s)",
            vl.overall,
            val.label(),
            t_val.elapsed().as_secs_f64()
        ),
    );
    let mut adherence = serde_json::Value::Null;
    if a.adherence > 0 {
        adherence = sample_and_measure(&proxy, &trained.unet, &cfg, &a.out, &bar)?;
    }
    let summary = serde_json::json!({
        "arch": arch.hash_id(),
        "arch_source": arch_source,
        "settings": s,
        "settings_hash": hash,
        "data": data_label,
        "init": init.as_ref().map(|i| i.1.clone()),
        "inherited": trained.inherited.map(|st| serde_json::json!({"copied": st.copied, "fresh": st.fresh})),
        "teacher": teacher.as_ref().map(|t| t.label.clone()),
        "feature_sections": trained.feature_sections,
        "steps": s.steps,
        "final_loss_last_5pct": tail_mean(&trained.losses),
        "val_loss": {"overall": vl.overall, "bands": vl.bands, "set": val.label()},
        "seconds_this_call": secs,
        "steps_this_call": trained.steps_run,
        "device": a.device,
        "adherence": adherence,
        "unet": unet_dir.file_name().map(|n| n.to_string_lossy().to_string()),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "unas": env!("CARGO_PKG_VERSION"),
    });
    let file = a.out.join("train.json");
    let tmp = a.out.join(".train.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string_pretty(&summary).expect("json") + "\n",
    )
    .and_then(|_| std::fs::rename(&tmp, &file))
    .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
    println!(
        "{} -> {} ({}, loss.svg, train.json)",
        arch.hash_id(),
        a.out.display(),
        unet_folder(&arch)
    );
    Ok(())
}

mod outputs;
mod source;

use outputs::{sample_and_measure, tail_mean, write_loss_files, Job};
use source::{check_teacher, from_run, init_weights, pipeline_of, read_source, Source};
