//! `unas bench`: time the burn U-Net, optionally against PyTorch eager in the same invocation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use unas_runtime::bench::{bench_on, profile_on, BenchConfig, Progress, Timing};
use unas_runtime::device::Device;

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
    /// Also time PyTorch eager on the CPU and print the ratio burn / torch.
    #[arg(long)]
    vs_torch: bool,
    /// Python interpreter for --vs-torch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Also time each module kind separately (synchronising after every module).
    #[arg(long)]
    profile: bool,
    /// Print the results as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs a bench subcommand.
pub fn run(cmd: BenchCommand) -> CmdResult {
    match cmd {
        BenchCommand::Unet(args) => unet(args),
    }
}

fn progress_bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} {wide_bar} {pos}/{len} runs {elapsed}")
            .expect("valid template"),
    );
    bar.set_prefix(format!("{label}: building model"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn on_progress<'a>(bar: &'a ProgressBar, label: &str) -> impl FnMut(Progress) + 'a {
    let label = label.to_string();
    move |p| match p {
        Progress::Built { total } => {
            bar.set_length(total as u64);
            bar.set_prefix(label.clone());
        }
        Progress::Run { done, .. } => bar.set_position(done as u64),
    }
}

fn threads(args: &UnetArgs) -> Result<usize, CliError> {
    if let Some(n) = args.threads {
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
    let device: Device = args.device.parse().map_err(CliError::input)?;
    let n_threads = threads(&args)?;
    if args.vs_torch && device != Device::Cpu {
        return Err(CliError::input(
            "--vs-torch compares against PyTorch on the CPU; use it with --device cpu",
        ));
    }
    let cfg = BenchConfig {
        latent: args.latent,
        batch: args.batch,
        text_len: args.text_len,
        warmup: args.warmup,
        repeats: args.repeats,
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
            repeats: args.repeats.min(3),
            ..cfg.clone()
        };
        let bar = progress_bar("burn profile");
        let kinds = profile_on(device, &arch, &cfg, &mut on_progress(&bar, "burn profile"));
        bar.finish_and_clear();
        Some(kinds.map_err(CliError::failure)?)
    } else {
        None
    };

    let torch = if args.vs_torch {
        let bar = ProgressBar::new_spinner();
        bar.set_message("torch eager: building and timing");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let t = run_torch(&args, &arch, n_threads);
        bar.finish_and_clear();
        Some(t?)
    } else {
        None
    };

    if args.json {
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
        if arch.name.is_empty() {
            &args.arch
        } else {
            &arch.name
        },
        arch.layout,
        report.params,
        cost.macs as f64 / 1e9
    );
    println!(
        "latent {0}x{0}, batch {1}, text {2} tokens; {3} warm-up + {4} timed runs",
        args.latent, args.batch, args.text_len, args.warmup, args.repeats
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

fn torch_script() -> Result<PathBuf, CliError> {
    let rel = Path::new("tools/bench/torch_unet.py");
    if rel.exists() {
        return Ok(rel.to_path_buf());
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    if built.exists() {
        return Ok(built);
    }
    Err(CliError::input(
        "--vs-torch needs tools/bench/torch_unet.py: run from the unas repository root",
    ))
}

fn run_torch(
    args: &UnetArgs,
    arch: &unas_space::UNetArch,
    threads: usize,
) -> Result<(Timing, serde_json::Value), CliError> {
    let script = torch_script()?;
    let json = serde_json::to_string(arch).expect("UNetArch serialises");
    let mut child = Command::new(&args.python)
        .arg(&script)
        .args(["--arch", "-"])
        .args(["--latent", &args.latent.to_string()])
        .args(["--batch", &args.batch.to_string()])
        .args(["--text-len", &args.text_len.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--repeats", &args.repeats.to_string()])
        .args(["--threads", &threads.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::input(format!("cannot run {}: {e}", args.python)))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(json.as_bytes())
        .map_err(|e| CliError::failure(format!("writing to {}: {e}", script.display())))?;
    let out = child
        .wait_with_output()
        .map_err(|e| CliError::failure(format!("{}: {e}", script.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(CliError::failure(format!(
            "{} failed ({}):\n{}",
            script.display(),
            out.status,
            tail.join("\n")
        )));
    }
    let raw: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| CliError::failure(format!("{} printed no JSON: {e}", script.display())))?;
    let samples: Vec<f64> = raw["samples_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    if samples.is_empty() {
        return Err(CliError::failure(format!(
            "{} reported no timings",
            script.display()
        )));
    }
    Ok((Timing::from_samples(samples), raw))
}
