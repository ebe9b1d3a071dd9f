//! `unas`: hardware-aware neural architecture search for latent-diffusion U-Nets.

mod cmd;

use clap::{Parser, Subcommand};

/// unas: search, measure and run latent-diffusion U-Net architectures.
#[derive(Parser)]
#[command(name = "unas", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect architectures and search spaces: block tables, samples, space statistics.
    #[command(subcommand)]
    Space(cmd::space::SpaceCommand),
    /// Benchmarks: time the burn U-Net on a device, optionally against PyTorch eager.
    #[command(subcommand)]
    Bench(cmd::bench::BenchCommand),
    /// Latency of one denoising step: measured on this device, from a lookup table, or from a
    /// GPU roofline profile; `validate` checks a table, `calibrate` fits a profile.
    Latency(cmd::latency::LatencyArgs),
    /// Build a per-block latency lookup table for a search space on this device.
    Profile(cmd::latency::ProfileArgs),
    /// Text-to-image with a diffusers model folder, optionally with a unas U-Net in its place.
    Generate(Box<cmd::generate::GenerateArgs>),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Space(c) => cmd::space::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Generate(a) => cmd::generate::run(*a),
        Command::Latency(a) => cmd::latency::run(a),
        Command::Profile(a) => cmd::latency::run_profile(a),
    };
    if let Err(err) = result {
        eprintln!("error: {}", err.message);
        std::process::exit(err.code);
    }
}
