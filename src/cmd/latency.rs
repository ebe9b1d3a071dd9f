//! `unas latency …` and `unas profile`: per-block and total latency of one denoising step from
//! a measured, lookup-table or roofline model; validation of a table; calibration of a profile.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use unas_evaluator::latency::calibrate::fit_matmul_efficiency;
use unas_evaluator::latency::lut::{LookupTable, LutProgress};
use unas_evaluator::latency::lut_build::ProfileOptions;
use unas_evaluator::latency::measured::{MeasuredModel, Repeats};
use unas_evaluator::latency::profile::DeviceProfile;
use unas_evaluator::latency::{Dtype, LatencyModel, LatencySetting};
use unas_evaluator::EvalError;
use unas_runtime::device::Device;
use unas_space::rng::Rng;
use unas_space::{load_arch, SearchSpace};

use super::progress::{self, spinner};
use super::{CliError, CmdResult};

/// `unas latency`: predict or measure one denoising step.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LatencyArgs {
    #[command(subcommand)]
    command: Option<LatencyCommand>,
    #[command(flatten)]
    predict: PredictArgs,
}

/// `unas latency` subcommands.
#[derive(Subcommand)]
enum LatencyCommand {
    /// Measure random architectures of a space end to end and compare with a lookup table's
    /// predictions: RMSE, RMSPE and the share within ±5/±10/±15 % (nn-Meter's metrics).
    Validate(ValidateArgs),
    /// Fit a device profile's matmul efficiency so that it predicts a published pipeline time
    /// (all other fields stay as they are), and show the predictions it then makes.
    Calibrate(CalibrateArgs),
}

/// Setting options shared by the latency commands (defaults depend on the model).
#[derive(Args, Clone, Copy, Default)]
struct SettingArgs {
    /// Latent side (default 64; a lookup table's own setting for lut:).
    #[arg(long)]
    latent: Option<usize>,
    /// U-Net batch (default 2: one image with classifier-free guidance).
    #[arg(long)]
    batch: Option<usize>,
    /// Text tokens (default 77).
    #[arg(long)]
    text_len: Option<usize>,
    /// f16, bf16 or f32 (default: f32 when measuring on the CPU, f16 for GPU profiles).
    #[arg(long)]
    dtype: Option<Dtype>,
}

impl SettingArgs {
    fn resolve(&self, base: LatencySetting) -> LatencySetting {
        LatencySetting {
            latent: self.latent.unwrap_or(base.latent),
            batch: self.batch.unwrap_or(base.batch),
            text_len: self.text_len.unwrap_or(base.text_len),
            dtype: self.dtype.unwrap_or(base.dtype),
        }
    }
}

#[derive(Args)]
struct PredictArgs {
    /// Architecture: preset (sd15, decidiffusion, tiny, tiny-nas) or unas TOML file.
    #[arg(long)]
    arch: Option<String>,
    /// measured (on --device), lut:FILE (a table from `unas profile`) or profile:NAME|FILE
    /// (a roofline device profile: a10, a10g, h100 or a TOML file).
    #[arg(long, default_value = "measured")]
    model: String,
    #[command(flatten)]
    setting: SettingArgs,
    /// Device for measured: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Untimed runs before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs (median and IQR).
    #[arg(long, default_value_t = 9)]
    repeats: usize,
    /// For measured: also time every block inside the network (extra passes that synchronise
    /// after each module; the total stays the end-to-end median).
    #[arg(long)]
    breakdown: bool,
    /// For profile models: also predict a whole N-step text-to-image pipeline per image.
    #[arg(long)]
    pipeline_steps: Option<usize>,
}

#[derive(Args)]
struct CalibrateArgs {
    /// Device profile: a10, a10g, h100 or a TOML file.
    #[arg(long)]
    profile: String,
    /// Architecture of the published figure.
    #[arg(long, default_value = "sd15")]
    arch: String,
    /// Denoising steps of the published figure.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Published seconds per image.
    #[arg(long)]
    seconds: f64,
    /// Architectures to predict with the fitted profile (held-out checks).
    #[arg(long, default_value = "decidiffusion")]
    check: Vec<String>,
    #[command(flatten)]
    setting: SettingArgs,
    /// Write the fitted efficiency back into the profile file (4 decimals).
    #[arg(long)]
    write: bool,
}

/// `unas profile`: build a per-block lookup table.
#[derive(Args)]
pub struct ProfileArgs {
    /// Device to measure on: cpu, or cuda / cuda:N (a build with `--features cuda`; f16 and
    /// bf16 via --dtype). A table holds for the device, backend and dtype it was made on.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Search space whose block variants are measured (preset or TOML file).
    #[arg(long)]
    space: String,
    /// Output table (TOML), e.g. configs/devices/cpu.lut.toml.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    setting: SettingArgs,
    /// Untimed runs per variant.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs per variant.
    #[arg(long, default_value_t = 9)]
    repeats: usize,
    /// Random architectures measured end to end to fit the overhead term.
    #[arg(long, default_value_t = 6)]
    overhead_archs: usize,
    /// Seed of those architectures.
    #[arg(long, default_value_t = 1000)]
    seed: u64,
    /// Refuse to measure when the host is noisier than this: the spread (IQR / lower quartile)
    /// of a reference forward's 15 repeats, read up to 3 times 5 s apart; 0 turns the check
    /// off.
    #[arg(long, default_value_t = 0.10)]
    max_noise: f64,
}

fn eval_err(e: EvalError) -> CliError {
    match e {
        EvalError::Measure(_) => CliError::failure(e),
        _ => CliError::input(e),
    }
}

fn cpu_setting(space_or_default: Option<&SearchSpace>) -> LatencySetting {
    let c = space_or_default.map(|s| &s.constraints);
    LatencySetting {
        latent: c.map_or(64, |c| c.latent),
        batch: c.map_or(2, |c| c.batch),
        text_len: c.map_or(77, |c| c.text_len),
        dtype: Dtype::F32,
    }
}

/// Runs `unas latency`.
pub fn run(args: LatencyArgs) -> CmdResult {
    match args.command {
        Some(LatencyCommand::Validate(a)) => validate(a),
        Some(LatencyCommand::Calibrate(a)) => calibrate(a),
        None => predict(args.predict),
    }
}

fn predict(a: PredictArgs) -> CmdResult {
    let Some(arch_spec) = a.arch.as_deref() else {
        return Err(CliError::input(
            "--arch is required (or use `unas latency validate|calibrate`); see --help",
        ));
    };
    let arch = load_arch(arch_spec)?;
    let repeats = Repeats {
        warmup: a.warmup,
        repeats: a.repeats,
    };
    if repeats.repeats == 0 {
        return Err(CliError::input("--repeats must be at least 1"));
    }
    let (model, setting): (Box<dyn LatencyModel>, LatencySetting) =
        if let Some(file) = a.model.strip_prefix("lut:") {
            let t = LookupTable::load(std::path::Path::new(file)).map_err(eval_err)?;
            let s = a.setting.resolve(t.setting);
            (Box::new(t), s)
        } else if let Some(spec) = a.model.strip_prefix("profile:") {
            let p = DeviceProfile::load(spec).map_err(eval_err)?;
            (Box::new(p), a.setting.resolve(LatencySetting::default()))
        } else if a.model == "measured" {
            let device: Device = a.device.parse().map_err(CliError::input)?;
            device.check().map_err(CliError::input)?;
            (
                Box::new(MeasuredModel {
                    device,
                    repeats,
                    breakdown: a.breakdown,
                    statistic: Default::default(),
                }),
                a.setting.resolve(cpu_setting(None)),
            )
        } else {
            return Err(CliError::input(format!(
                "--model `{}`: use measured, lut:FILE or profile:NAME|FILE",
                a.model
            )));
        };
    let bar = spinner(&format!("{}: {}", model.describe(), arch_spec));
    let report = model.predict(&arch, &setting);
    bar.finish_and_clear();
    let report = report.map_err(eval_err)?;
    println!(
        "{} — latent {1}x{1}, batch {2}, {3} tokens, {4}",
        arch_spec,
        setting.latent,
        setting.batch,
        setting.text_len,
        setting.dtype.name()
    );
    println!("model: {}", model.describe());
    if !report.blocks.is_empty() {
        println!();
        println!("{:<7} {:<15} {:>10}  key", "stage", "type", "ms");
        for b in &report.blocks {
            println!(
                "{:<7} {:<15} {:>10.3}  {}",
                b.section.to_string(),
                b.kind,
                b.ms,
                if b.key.is_empty() {
                    "conv_norm_out, conv_out"
                } else {
                    &b.key
                }
            );
        }
        if report.overhead_ms != 0.0 {
            println!("{:<7} {:<15} {:>10.3}", "", "overhead", report.overhead_ms);
        }
        println!();
    }
    match report.iqr_ms {
        Some(iqr) => println!(
            "total: {:.3} ms per step (median of {} runs, IQR {:.3} ms)",
            report.total_ms, repeats.repeats, iqr
        ),
        None => println!("total: {:.3} ms per step", report.total_ms),
    }
    if let Some(steps) = a.pipeline_steps {
        let Some(spec) = a.model.strip_prefix("profile:") else {
            return Err(CliError::input("--pipeline-steps needs a profile: model"));
        };
        let p = DeviceProfile::load(spec).map_err(eval_err)?;
        let s = p
            .pipeline_seconds(&arch, &setting, steps)
            .map_err(eval_err)?;
        println!(
            "pipeline: {s:.3} s per image at {steps} steps (text encoder, U-Net steps, VAE decode)"
        );
    }
    Ok(())
}

/// A bar over `len` units labelled `what`.
fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = progress::bar(
        len,
        "{prefix} {wide_bar} {pos}/{len} {msg} [{elapsed} < {eta}]",
    );
    bar.set_prefix(what.to_string());
    bar
}

fn calibrate(a: CalibrateArgs) -> CmdResult {
    let mut profile = DeviceProfile::load(&a.profile).map_err(eval_err)?;
    let setting = a.setting.resolve(LatencySetting::default());
    let arch = load_arch(&a.arch)?;
    if a.seconds.is_nan() || a.seconds <= 0.0 || a.steps == 0 {
        return Err(CliError::input("--seconds and --steps must be positive"));
    }
    let before = profile.efficiency.matmul;
    let eff =
        fit_matmul_efficiency(&profile, &arch, &setting, a.steps, a.seconds).map_err(eval_err)?;
    profile.efficiency.matmul = (eff * 1e4).round() / 1e4;
    println!(
        "fitted efficiency.matmul = {eff:.5} (was {before}); nothing else is fitted: rates are \
         datasheet values, efficiency.memory = {} and launch_overhead_us = {} are assumptions",
        profile.efficiency.memory, profile.efficiency.launch_overhead_us
    );
    let base = profile.predict(&arch, &setting).map_err(eval_err)?.total_ms;
    println!(
        "{:<16} {:>10} {:>14} {:>14} {:>12}",
        "arch", "ms/step", "s/image 50 st", "s/image 30 st", "step ratio"
    );
    let mut names = vec![a.arch.clone()];
    names.extend(a.check.iter().cloned());
    for name in names {
        let arch = load_arch(&name)?;
        let ms = profile.predict(&arch, &setting).map_err(eval_err)?.total_ms;
        let p50 = profile
            .pipeline_seconds(&arch, &setting, 50)
            .map_err(eval_err)?;
        let p30 = profile
            .pipeline_seconds(&arch, &setting, 30)
            .map_err(eval_err)?;
        println!(
            "{name:<16} {ms:>10.2} {p50:>14.3} {p30:>14.3} {:>12.3}",
            base / ms
        );
    }
    if a.write {
        let path = PathBuf::from(&a.profile);
        if !path.exists() {
            return Err(CliError::input(format!(
                "--write needs a profile file, not the preset name `{}`",
                a.profile
            )));
        }
        profile.save(&path).map_err(eval_err)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// A `--device` value, parsed and probed: a CUDA device without its driver (or in a build
/// without the `cuda` feature) is bad input (exit 2) with a message naming what is missing.
pub(crate) fn checked_device(spec: &str) -> Result<Device, CliError> {
    let device: Device = spec.parse().map_err(CliError::input)?;
    device
        .check()
        .map_err(|e| CliError::input(format!("--device {spec}: {e}")))?;
    Ok(device)
}

/// Runs `unas profile`.
pub fn run_profile(a: ProfileArgs) -> CmdResult {
    let device = checked_device(&a.device)?;
    let space = SearchSpace::load(&a.space)?;
    let setting = a.setting.resolve(cpu_setting(Some(&space)));
    let repeats = Repeats {
        warmup: a.warmup,
        repeats: a.repeats,
    };
    if repeats.repeats == 0 {
        return Err(CliError::input("--repeats must be at least 1"));
    }
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(CliError::input(format!(
                "--out: folder {} does not exist",
                dir.display()
            )));
        }
    }
    let pb = bar(0, "timing block variants");
    let mut every = progress::Every::new(progress::LOG_EVERY);
    let options = ProfileOptions {
        repeats,
        overhead_archs: a.overhead_archs,
        seed: a.seed,
        device,
        max_noise: (a.max_noise > 0.0).then_some(a.max_noise),
    };
    let table = LookupTable::build(&space, &setting, &options, &mut |p| {
        match p {
            LutProgress::Noise { level } => pb.suspend(|| {
                eprintln!(
                    "host noise: {:.1} % (limit {:.1} %)",
                    level * 100.0,
                    a.max_noise * 100.0
                )
            }),
            LutProgress::Archs { total } => pb.set_length(total as u64),
            LutProgress::ArchDone => pb.inc(1),
            LutProgress::Overhead { total } => {
                pb.set_prefix("overhead fit");
                pb.set_position(0);
                pb.set_length(total as u64);
                pb.set_message("");
            }
            LutProgress::OverheadDone => pb.inc(1),
        }
        let finished = pb.length().is_some_and(|n| pb.position() == n);
        if pb.is_hidden() && (every.due() || finished) {
            eprintln!(
                "{}: {}/{}",
                pb.prefix(),
                pb.position(),
                pb.length().unwrap_or(0)
            );
        }
    });
    pb.finish_and_clear();
    let mut table = table.map_err(eval_err)?;
    table.file = a.out.clone();
    table.save(&a.out).map_err(eval_err)?;
    println!(
        "wrote {} ({} block variants of space `{}` at latent {}, batch {}, {} tokens; overhead \
         {:.3} ms)",
        a.out.display(),
        table.entry.len(),
        space.name,
        setting.latent,
        setting.batch,
        setting.text_len,
        table.overhead_ms
    );
    Ok(())
}

mod validate;

use validate::{validate, ValidateArgs};
