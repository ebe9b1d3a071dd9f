//! `unas bench`: time the burn U-Net, optionally against PyTorch eager in the same invocation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use unas_runtime::bench::{bench_on, profile_on, BenchConfig, Progress, Timing};
use unas_runtime::device::Device;

use super::progress;
use super::{CliError, CmdResult};

/// Benchmarks.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Time one U-Net forward pass (random weights): warm-up runs, then repeats; prints the
    /// median and interquartile range. With --vs-torch, also times the same architecture in
    /// PyTorch eager (tools/bench/torch_unet.py, built from diffusers blocks) on the same number
    /// of CPU threads and prints the ratio burn / torch.
    #[command(
        after_help = "Examples:\n  unas bench unet --arch tiny --latent 32 --batch 2 --vs-torch\n  \
                      unas bench unet --arch decidiffusion --latent 64 --repeats 3 --profile\n  \
                      unas bench unet --arch my_arch.toml --device cuda\n\n\
                      The CPU thread count is RAYON_NUM_THREADS (or --threads), default: all \
                      cores. --vs-torch needs python3 with torch and diffusers \
                      (tools/fixtures/requirements.txt) and runs from the repository root."
    )]
    Unet(UnetArgs),
    /// Time one training step of the CPU proxy (random weights and data): forward + the
    /// recipe's weighted loss, backward through burn's autodiff, the AdamW update. Prints each
    /// phase's median and IQR. With --vs-torch, also times the same step in PyTorch eager
    /// (tools/bench/torch_train.py: same model, loss and AdamW settings) on the same number of CPU
    /// threads and prints the ratios burn / torch.
    #[command(
        after_help = "Examples:\n  unas bench train --arch tiny --vs-torch\n  \
                      unas bench train --arch tiny-nas --batch 16 --latent 16 --vs-torch --threads 2\n  \
                      unas bench train --arch tiny --device cuda\n\n\
                      Defaults are the CPU proxy's shapes (batch 16, latent 16, 16 tokens). The CPU \
                      thread count is RAYON_NUM_THREADS (or --threads), default: all cores. \
                      --vs-torch needs python3 with torch and diffusers \
                      (tools/fixtures/requirements.txt) and runs from the repository root."
    )]
    Train(TrainArgs),
}

/// Arguments of `unas bench train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Architecture: a preset (sd15, decidiffusion, tiny, tiny-nas) or a .toml file.
    #[arg(long)]
    arch: String,
    /// Latent height and width.
    #[arg(long, default_value_t = 16)]
    latent: usize,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Text tokens attended to.
    #[arg(long, default_value_t = 16)]
    text_len: usize,
    #[command(flatten)]
    run: RunArgs,
}

/// How a benchmark runs: repeats, device, threads, the PyTorch comparison, output format.
#[derive(Args)]
pub struct RunArgs {
    /// Timed runs.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Untimed warm-up runs before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU threads for burn and torch (default: RAYON_NUM_THREADS, else all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Also time PyTorch eager on the CPU (same shapes, same thread count) and print the ratio
    /// burn / torch.
    #[arg(long)]
    vs_torch: bool,
    /// Python interpreter for --vs-torch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Print the results as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Arguments of `unas bench unet`.
#[derive(Args)]
pub struct UnetArgs {
    /// Architecture: a preset (sd15, decidiffusion, tiny, tiny-nas) or a .toml file.
    #[arg(long)]
    arch: String,
    /// Latent height and width (64 = 512 px images with SD's VAE).
    #[arg(long, default_value_t = 64)]
    latent: usize,
    /// Batch size (2 = one image with classifier-free guidance).
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Text tokens attended to.
    #[arg(long, default_value_t = 77)]
    text_len: usize,
    /// Also time each module kind separately (synchronising after every module).
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    run: RunArgs,
}

/// Runs a bench subcommand.
pub fn run(cmd: BenchCommand) -> CmdResult {
    match cmd {
        BenchCommand::Unet(args) => unet(args),
        BenchCommand::Train(args) => train(args),
    }
}

fn progress_bar(label: &str) -> ProgressBar {
    let bar = progress::bar(
        0,
        "{spinner} {prefix} {wide_bar} {pos}/{len} runs {elapsed}",
    );
    bar.set_prefix(format!("{label}: building model"));
    bar
}

/// Moves `bar`; without a terminal logs the model's build and a line every
/// [`progress::LOG_EVERY`] (and at the last run).
fn on_progress<'a>(bar: &'a ProgressBar, label: &str) -> impl FnMut(Progress) + 'a {
    let label = label.to_string();
    let mut every = progress::Every::new(progress::LOG_EVERY);
    move |p| match p {
        Progress::Built { total } => {
            bar.set_length(total as u64);
            bar.set_prefix(label.clone());
            if bar.is_hidden() {
                eprintln!("{label}: model built, {total} timed runs");
            }
        }
        Progress::Run { done, .. } => {
            bar.set_position(done as u64);
            let last = bar.length() == Some(done as u64);
            if bar.is_hidden() && (every.due() || last) {
                eprintln!("{label}: run {done}/{}", bar.length().unwrap_or(0));
            }
        }
    }
}

fn threads(requested: Option<usize>) -> Result<usize, CliError> {
    if let Some(n) = requested {
        if n == 0 {
            return Err(CliError::input("--threads must be at least 1"));
        }
        // Read by rayon when it builds its global pool, on burn's first parallel operation.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        return Ok(n);
    }
    if let Some(n) = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
    {
        return Ok(n);
    }
    Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn unet(args: UnetArgs) -> CmdResult {
    let arch = unas_space::load_arch(&args.arch)?;
    let device: Device = args.run.device.parse().map_err(CliError::input)?;
    let n_threads = threads(args.run.threads)?;
    if args.run.vs_torch && device != Device::Cpu {
        return Err(CliError::input(
            "--vs-torch compares against PyTorch on the CPU; use it with --device cpu",
        ));
    }
    let cfg = BenchConfig {
        latent: args.latent,
        batch: args.batch,
        text_len: args.text_len,
        warmup: args.run.warmup,
        repeats: args.run.repeats,
    };
    let query = unas_space::CostQuery {
        height: args.latent,
        width: args.latent,
        batch: args.batch,
        text_len: args.text_len,
    };
    let cost = arch.plan().map_err(CliError::input)?.cost(&query)?;
    let describe = match device {
        Device::Cpu => format!("{} (burn flex, {n_threads} threads)", device.describe()),
        Device::Cuda(_) => device.describe(),
    };

    let bar = progress_bar("burn");
    let report = bench_on(device, &arch, &cfg, &mut on_progress(&bar, "burn"));
    bar.finish_and_clear();
    let report = report.map_err(|e| match e {
        unas_runtime::RuntimeError::Input(_) | unas_runtime::RuntimeError::Device(_) => {
            CliError::input(e)
        }
        _ => CliError::failure(e),
    })?;

    let profile = if args.profile {
        let cfg = BenchConfig {
            warmup: 1,
            repeats: args.run.repeats.min(3),
            ..cfg.clone()
        };
        let bar = progress_bar("burn profile");
        let kinds = profile_on(device, &arch, &cfg, &mut on_progress(&bar, "burn profile"));
        bar.finish_and_clear();
        Some(kinds.map_err(CliError::failure)?)
    } else {
        None
    };

    let torch = if args.run.vs_torch {
        let raw = torch_baseline(
            "tools/bench/torch_unet.py",
            "torch eager: building and timing",
            &args.run,
            &arch,
            [args.latent, args.batch, args.text_len],
            n_threads,
        )?;
        Some((timing_of(&raw, "", "torch_unet.py")?, raw))
    } else {
        None
    };

    if args.run.json {
        let mut out = serde_json::json!({
            "arch": arch.name,
            "device": describe,
            "threads": n_threads,
            "params": report.params,
            "macs": cost.macs,
            "burn": report,
        });
        if let Some(p) = &profile {
            out["profile"] = serde_json::to_value(p).expect("serialisable");
        }
        if let Some((t, raw)) = &torch {
            out["torch"] = raw.clone();
            out["ratio_burn_over_torch"] = (report.forward.median_ms / t.median_ms).into();
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialisable")
        );
        return Ok(());
    }

    println!(
        "U-Net `{}` ({:?} layout): {} params, {:.1} GMACs per forward",
        label(&arch, &args.arch),
        arch.layout,
        report.params,
        cost.macs as f64 / 1e9
    );
    println!(
        "latent {0}x{0}, batch {1}, text {2} tokens; {3} warm-up + {4} timed runs",
        args.latent, args.batch, args.text_len, args.run.warmup, args.run.repeats
    );
    println!("device: {describe}");
    println!(
        "{:<22} {}",
        "burn:",
        timing_line(&report.forward, report.build_ms)
    );
    if let Some((t, raw)) = &torch {
        let version = raw["torch_version"].as_str().unwrap_or("?");
        println!(
            "{:<22} {}",
            format!("torch {version} eager:"),
            timing_line(t, raw["build_ms"].as_f64().unwrap_or(f64::NAN))
        );
        println!(
            "ratio burn / torch:    {:.2}x (medians)",
            report.forward.median_ms / t.median_ms
        );
    }
    if let Some(kinds) = profile {
        let total: f64 = kinds.iter().map(|k| k.median_ms).sum();
        println!("per module kind (synchronised after each module; total {total:.1} ms):");
        for k in kinds {
            println!(
                "  {:<15} {:>4} runs {:>10.1} ms {:>5.1}%",
                k.kind,
                k.runs,
                k.median_ms,
                100.0 * k.median_ms / total
            );
        }
    }
    Ok(())
}

/// The architecture's name, or what the user passed when it has none (a file).
fn label<'a>(arch: &'a unas_space::UNetArch, given: &'a str) -> &'a str {
    if arch.name.is_empty() {
        given
    } else {
        &arch.name
    }
}

fn timing_line(t: &Timing, build_ms: f64) -> String {
    format!(
        "median {:>9.1} ms   IQR {:>7.1} ms ({:.1} .. {:.1})   build {:.0} ms",
        t.median_ms,
        t.iqr_ms(),
        t.q1_ms,
        t.q3_ms,
        build_ms
    )
}

fn train(args: TrainArgs) -> CmdResult {
    use unas_evaluator::quality::bench_train::{bench_train, TrainBenchConfig};
    let arch = unas_space::load_arch(&args.arch)?;
    let device: Device = args.run.device.parse().map_err(CliError::input)?;
    device.check().map_err(CliError::input)?;
    let n_threads = threads(args.run.threads)?;
    if args.run.vs_torch && device != Device::Cpu {
        return Err(CliError::input(
            "--vs-torch compares against PyTorch on the CPU; use it with --device cpu",
        ));
    }
    let cfg = TrainBenchConfig {
        latent: args.latent,
        batch: args.batch,
        text_len: args.text_len,
        warmup: args.run.warmup,
        repeats: args.run.repeats,
    };
    let describe = match device {
        Device::Cpu => format!("{} (burn flex, {n_threads} threads)", device.describe()),
        Device::Cuda(_) => device.describe(),
    };
    let bar = progress_bar("burn");
    let report = {
        let mut progress = on_progress(&bar, "burn");
        match device {
            Device::Cpu => bench_train::<burn::backend::Autodiff<unas_runtime::device::Cpu>>(
                &arch,
                &cfg,
                &Default::default(),
                &mut progress,
            ),
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => bench_train::<burn::backend::Autodiff<unas_runtime::device::Cuda>>(
                &arch,
                &cfg,
                &burn::backend::cuda::CudaDevice::new(i),
                &mut progress,
            ),
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
        }
    };
    bar.finish_and_clear();
    let report = report.map_err(|e| match e {
        unas_evaluator::EvalError::Unsupported(_) => CliError::input(e),
        _ => CliError::failure(e),
    })?;

    let torch = if args.run.vs_torch {
        let raw = torch_baseline(
            "tools/bench/torch_train.py",
            "torch eager: building and timing training steps",
            &args.run,
            &arch,
            [args.latent, args.batch, args.text_len],
            n_threads,
        )?;
        let mut phases = Vec::new();
        for key in ["forward", "backward", "optimizer", "step"] {
            phases.push(timing_of(&raw, key, "torch_train.py")?);
        }
        Some((phases, raw))
    } else {
        None
    };
    let ours = [
        ("forward + loss", &report.forward),
        ("backward", &report.backward),
        ("AdamW step", &report.optimizer),
        ("training step", &report.step),
    ];

    if args.run.json {
        let mut out = serde_json::json!({
            "arch": arch.name,
            "device": describe,
            "threads": n_threads,
            "params": report.params,
            "burn": report,
        });
        if let Some((phases, raw)) = &torch {
            out["torch"] = raw.clone();
            out["ratio_burn_over_torch"] = serde_json::json!({
                "forward": report.forward.median_ms / phases[0].median_ms,
                "backward": report.backward.median_ms / phases[1].median_ms,
                "optimizer": report.optimizer.median_ms / phases[2].median_ms,
                "step": report.step.median_ms / phases[3].median_ms,
            });
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialisable")
        );
        return Ok(());
    }
    println!(
        "training step of `{}` ({:?} layout): {} params",
        label(&arch, &args.arch),
        arch.layout,
        report.params
    );
    println!(
        "latent {0}x{0}, batch {1}, text {2} tokens; {3} warm-up + {4} timed steps",
        args.latent, args.batch, args.text_len, args.run.warmup, args.run.repeats
    );
    println!("device: {describe}");
    let version = torch
        .as_ref()
        .and_then(|(_, raw)| raw["torch_version"].as_str().map(str::to_string));
    match &version {
        Some(v) => println!(
            "{:<16} {:>12} {:>12} {:>8}   (medians; IQR in brackets)",
            "",
            "burn ms",
            format!("torch {}", v.split('+').next().unwrap_or(v)),
            "ratio"
        ),
        None => println!("{:<16} {:>12}   (medians; IQR in brackets)", "", "burn ms"),
    }
    for (i, (name, t)) in ours.iter().enumerate() {
        match &torch {
            Some((phases, _)) => println!(
                "{:<16} {:>12} {:>12} {:>7.2}x",
                name,
                format!("{:.1} [{:.1}]", t.median_ms, t.iqr_ms()),
                format!("{:.1} [{:.1}]", phases[i].median_ms, phases[i].iqr_ms()),
                t.median_ms / phases[i].median_ms
            ),
            None => println!(
                "{:<16} {:>12}",
                name,
                format!("{:.1} [{:.1}]", t.median_ms, t.iqr_ms())
            ),
        }
    }
    let first = report.losses.first().copied().unwrap_or(f32::NAN);
    let last = report.losses.last().copied().unwrap_or(f32::NAN);
    println!(
        "loss over the {} steps: {first:.4} -> {last:.4}",
        report.losses.len()
    );
    Ok(())
}

mod torch;

use torch::{timing_of, torch_baseline};
