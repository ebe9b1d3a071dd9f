//! `unas`: hardware-aware neural architecture search for latent-diffusion U-Nets.

mod cmd;

/// mimalloc instead of glibc's malloc (see Cargo.toml: page faults on reused tensor buffers).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` (mimalloc.h's `mi_option_e`, the same index in mimalloc 2 and 3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

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
    /// Proxy image quality of an architecture (train briefly, sample, Fréchet distance / KID on
    /// declared features); `calibrate` validates the proxy, `recipes` compares training recipes.
    Quality(Box<cmd::quality::QualityArgs>),
    /// Weight-sharing supernets: list a space's topologies, train one supernet per topology
    /// (sandwich rule, resumable), score candidates with inherited weights.
    #[command(subcommand)]
    Supernet(cmd::supernet::SupernetCommand),
    /// Train one architecture (a search's pick) to a finished model: from scratch, from a
    /// teacher's or a supernet's weights by role, optionally distilled from a teacher
    /// (BK-SDM); resumable checkpoints, a loss curve, its U-Net folder, prompt adherence.
    Train(Box<cmd::train::TrainArgs>),
    /// Architecture search under a latency budget: `--config FILE` runs a study (resumable
    /// with `--resume RUN_DIR`), then writes its report and exports the knee; `benchmark`
    /// compares the strategies with random search.
    Search(Box<cmd::search::SearchArgs>),
    /// Write a study's report (Pareto plot, hypervolume, block composition, report.html/.md).
    Report(cmd::search::ReportArgs),
    /// Serve a live, read-only view of a study (running or finished) over HTTP: counts,
    /// running trials with their workers, the Pareto front, hypervolume, block composition and
    /// a sortable trial table, updated as trials finish; JSON at /api/study and /api/trials.
    Dashboard(cmd::dashboard::DashboardArgs),
    /// Export a study's pick (knee, fastest, best-under:MS, a trial) as unet-nas.toml and a
    /// diffusers config.json.
    Export(cmd::search::ExportArgs),
    /// Evaluate a study's trials from a shared store (PostgreSQL across machines): claim a
    /// pending trial, evaluate it, write the result, repeat. Stateless; see docs/distributed.md.
    Worker(Box<cmd::worker::WorkerArgs>),
    /// Trial stores: list their studies, copy studies between SQLite and PostgreSQL.
    #[command(subcommand)]
    Store(cmd::store::StoreCommand),
}

fn main() {
    // Never return freed memory to the OS: a training step frees and reallocates the same
    // tensor buffers, and purged pages are faulted in (and zeroed by the kernel) again: 1.48 s
    // of system time over 15 `bench train --arch tiny` steps with mimalloc's default, 0.69 s
    // without purging (docs/cpu-speed.md).
    // SAFETY: sets a process-wide option of the allocator; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Space(c) => cmd::space::run(c),
        Command::Bench(c) => cmd::bench::run(c),
        Command::Generate(a) => cmd::generate::run(*a),
        Command::Latency(a) => cmd::latency::run(a),
        Command::Profile(a) => cmd::latency::run_profile(a),
        Command::Quality(a) => cmd::quality::run(*a),
        Command::Search(a) => cmd::search::run(*a),
        Command::Supernet(c) => cmd::supernet::run(c),
        Command::Train(a) => cmd::train::run(*a),
        Command::Report(a) => cmd::search::report(a),
        Command::Export(a) => cmd::search::export(a),
        Command::Dashboard(a) => cmd::dashboard::run(a),
        Command::Worker(a) => cmd::worker::run(*a),
        Command::Store(c) => cmd::store::run(c),
    };
    if let Err(err) = result {
        eprintln!("error: {}", err.message);
        std::process::exit(err.code);
    }
}
