//! `unas quality …`: the proxy-quality evaluation of one architecture, the validation of the
//! proxy against a longer budget (`calibrate`), and the recipe A vs B sample-efficiency study
//! (`recipes`).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use unas_evaluator::quality::proxy::{Proxy, ProxyConfig};
use unas_evaluator::quality::train::Recipe;
use unas_evaluator::EvalError;
use unas_space::{load_arch, SearchSpace, UNetArch};

use super::progress::{self, say, spinner};
use super::{CliError, CmdResult};

/// Calibration proxy: the zero-shot supernet score minus the supernet's level
/// (`unas_evaluator::quality::supernet_panel`).
const REL: &str = "supernet-val-loss-rel";

/// `unas quality`: proxy image quality of one architecture.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct QualityArgs {
    #[command(subcommand)]
    command: Option<QualityCommand>,
    /// Architecture: preset (tiny, tiny-nas, …) or unas TOML file.
    #[arg(long)]
    arch: Option<String>,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// Candidate seed (initialisation and training noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum QualityCommand {
    /// Validate quality proxies against a ground truth: N architectures stratified over the
    /// space's cost, each trained from scratch with several seeds (validation loss on the
    /// frozen held-out set), against parameters, MACs, early from-scratch losses and supernet
    /// scores; Kendall τ / Spearman ρ with bootstrap CIs, ICCs and the ground truth's noise
    /// ceiling. Resumable: every result is appended to OUT's tables as it comes.
    Calibrate(CalibrateArgs),
    /// Sample efficiency of the seed's recipe: train one architecture with recipe A
    /// (scaled-linear betas, epsilon) and recipe B (cosine, v-prediction, zero terminal SNR,
    /// Min-SNR-γ) at equal budget and score both at several sampling-step counts.
    Recipes(RecipesArgs),
}

/// Where the proxy settings and data come from: `--config`, `--data`, `--cache` (the rest
/// of [`ProxyArgs`], and all `unas supernet` needs).
#[derive(Args, Clone)]
pub(super) struct DataArgs {
    /// A study file (its `[quality]` table) or a TOML file with the proxy settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// builtin, fashion-mnist or a folder of captioned images.
    #[arg(long)]
    data: Option<String>,
    /// Cache folder (trained VAE, latents, text embeddings, extractor).
    #[arg(long)]
    cache: Option<PathBuf>,
}

impl DataArgs {
    /// The settings of `--config` (or the defaults) with `--data` and `--cache` applied,
    /// unchecked.
    fn base(&self) -> Result<ProxyConfig, CliError> {
        let mut cfg = match &self.config {
            None => ProxyConfig::default(),
            Some(path) => read_proxy_config(path)?,
        };
        if let Some(v) = &self.data {
            cfg.data = v.clone();
        }
        if let Some(v) = &self.cache {
            cfg.cache_dir = Some(v.clone());
        }
        Ok(cfg)
    }

    /// `base` (e.g. a study's `[quality]`), or `--config`'s settings when given, with `--data`
    /// and `--cache` applied, checked.
    pub(super) fn resolve_over(&self, base: ProxyConfig) -> Result<ProxyConfig, CliError> {
        let mut cfg = match &self.config {
            None => base,
            Some(_) => self.base()?,
        };
        if let Some(v) = &self.data {
            cfg.data = v.clone();
        }
        if let Some(v) = &self.cache {
            cfg.cache_dir = Some(v.clone());
        }
        cfg.check().map_err(CliError::input)?;
        Ok(cfg)
    }

    /// [`Self::base`], checked.
    pub(super) fn resolve(&self) -> Result<ProxyConfig, CliError> {
        let cfg = self.base()?;
        cfg.check().map_err(CliError::input)?;
        Ok(cfg)
    }
}

/// Proxy settings; each overrides the value from `--config` (or the default).
#[derive(Args, Clone)]
struct ProxyArgs {
    #[command(flatten)]
    source: DataArgs,
    /// Training steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Training batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Images sampled and scored.
    #[arg(long)]
    samples: Option<usize>,
    /// DDIM sampling steps.
    #[arg(long)]
    sampling_steps: Option<usize>,
    /// Classifier-free guidance scale.
    #[arg(long)]
    guidance: Option<f64>,
    /// Training recipe: decidiffusion (B) or sd15 (A).
    #[arg(long)]
    recipe: Option<String>,
    /// Feature extractor: featurenet (a CNN trained on the dataset's attributes) or
    /// inception:FILE (Inception-v3 weights, pytorch-fid key names: the score is then FID).
    #[arg(long)]
    features: Option<String>,
    /// Teacher for weight inheritance (preset or unas TOML): candidates start from its
    /// weights instead of a random initialisation ("none" = from scratch).
    #[arg(long)]
    teacher: Option<String>,
    /// Training steps of the teacher (trained once, cached).
    #[arg(long)]
    teacher_steps: Option<usize>,
}

impl ProxyArgs {
    fn resolve(&self) -> Result<ProxyConfig, CliError> {
        let mut cfg = self.source.base()?;
        if let Some(v) = self.steps {
            cfg.steps = v;
        }
        if let Some(v) = self.batch {
            cfg.batch = v;
        }
        if let Some(v) = self.samples {
            cfg.samples = v;
        }
        if let Some(v) = self.sampling_steps {
            cfg.sampling_steps = v;
        }
        if let Some(v) = self.guidance {
            cfg.guidance = v;
        }
        if let Some(r) = &self.recipe {
            cfg.recipe = recipe(r)?;
        }
        if let Some(v) = &self.features {
            cfg.features = v.clone();
        }
        if let Some(v) = &self.teacher {
            cfg.teacher = (v != "none").then(|| v.clone());
        }
        if let Some(v) = self.teacher_steps {
            cfg.teacher_steps = v;
        }
        cfg.check().map_err(CliError::input)?;
        Ok(cfg)
    }
}

fn recipe(name: &str) -> Result<Recipe, CliError> {
    match name {
        "decidiffusion" | "b" | "B" => Ok(Recipe::decidiffusion()),
        "sd15" | "a" | "A" => Ok(Recipe::sd15()),
        other => Err(CliError::input(format!(
            "--recipe: unknown recipe `{other}` (decidiffusion or sd15)"
        ))),
    }
}

/// Reads the `[quality]` table of a study file, or a whole file of proxy settings.
pub(super) fn read_proxy_config(path: &std::path::Path) -> Result<ProxyConfig, CliError> {
    let src = unas_space::Source::read(path)?;
    let doc: toml::Value = src.parse()?;
    let table = match doc.get("quality") {
        Some(q) => q.clone(),
        None => doc,
    };
    let text = toml::to_string(&table).map_err(CliError::input)?;
    toml::from_str::<ProxyConfig>(&text)
        .map_err(|e| CliError::input(format!("{}: [quality]: {e}", path.display())))
}

/// The bar over a list of trainings.
const TRAININGS: &str = "{wide_bar} {pos}/{len} trainings {msg} [{elapsed} < {eta}]";

/// Runs `unas quality …`.
pub fn run(args: QualityArgs) -> CmdResult {
    match args.command {
        Some(QualityCommand::Calibrate(a)) => calibrate(a),
        Some(QualityCommand::Recipes(a)) => recipes(a),
        None => evaluate_one(args),
    }
}

pub(super) fn prepare(cfg: &ProxyConfig, dim: usize) -> Result<Proxy, CliError> {
    let bar = spinner("preparing the proxy data");
    // Settings the data cannot be prepared with, and unreadable files, are the user's input.
    let proxy = Proxy::prepare(cfg, dim, &mut |line| say(&bar, line)).map_err(|e| match e {
        EvalError::Unsupported(_) | EvalError::File { .. } => {
            CliError::input(format!("preparing the proxy: {e}"))
        }
        _ => CliError::failure(format!("preparing the proxy: {e}")),
    })?;
    bar.finish_and_clear();
    Ok(proxy)
}

fn evaluate_one(args: QualityArgs) -> CmdResult {
    let Some(spec) = &args.arch else {
        return Err(CliError::input(
            "--arch is required (a preset such as tiny-nas, or a unas TOML file)",
        ));
    };
    let arch = load_arch(spec)?;
    let cfg = args.proxy.resolve()?;
    let proxy = prepare(&cfg, arch.stem.cross_attention_dim)?;
    proxy.check_arch(&arch).map_err(CliError::input)?;
    let bar = spinner(&format!(
        "{}: training {} steps, sampling {} images",
        arch.hash_id(),
        cfg.steps,
        cfg.samples
    ));
    let t0 = Instant::now();
    let score = proxy
        .evaluate(&arch, args.seed)
        .map_err(|e| CliError::failure(format!("evaluating {spec}: {e}")))?;
    bar.finish_and_clear();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&score).expect("serialisable")
        );
        return Ok(());
    }
    println!("arch        {} ({})", arch.hash_id(), spec);
    println!("metric      {}", score.metric);
    println!(
        "{:<11} {:.4}",
        if score.metric.starts_with("fid[") {
            "FID"
        } else {
            "FD"
        },
        score.fd
    );
    println!("KID         {:.5} ± {:.5}", score.kid, score.kid_std);
    println!("adherence   {:.3}", score.adherence);
    println!("final loss  {:.4}", score.final_loss);
    println!(
        "time        {:.1} s (training {:.1} s, sampling and scoring {:.1} s)",
        t0.elapsed().as_secs_f64(),
        score.train_seconds,
        score.sample_seconds
    );
    Ok(())
}

/// Runs `tasks` in order on `jobs` threads (at least one), printing each task's line above
/// `bar` and advancing it; the first error empties the queue (running tasks finish) and is
/// returned, after the bar is cleared.
fn run_queue<T: Send>(
    mut tasks: Vec<T>,
    jobs: usize,
    bar: &ProgressBar,
    work: impl Fn(T) -> Result<String, String> + Sync,
) -> Result<(), CliError> {
    tasks.reverse();
    let queue = std::sync::Mutex::new(tasks);
    let failure = std::sync::Mutex::new(None::<String>);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let Some(task) = queue.lock().expect("queue").pop() else {
                    break;
                };
                match work(task) {
                    Ok(line) => say(bar, line),
                    Err(e) => {
                        failure.lock().expect("failure").get_or_insert(e);
                        queue.lock().expect("queue").clear();
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    match failure.into_inner().expect("failure") {
        Some(e) => Err(CliError::failure(e)),
        None => Ok(()),
    }
}

/// Prints a Markdown table and also writes it to `out` when given.
fn emit_markdown(md: &str, out: Option<&std::path::Path>) -> CmdResult {
    print!("{md}");
    if let Some(out) = out {
        std::fs::write(out, md)
            .map_err(|e| CliError::failure(format!("{}: {e}", out.display())))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

mod calibrate;
mod recipes;
mod summary;

use calibrate::{calibrate, read_gt_settings, CalibrateArgs, GT_SETTINGS};
use recipes::{recipes, RecipesArgs};
use summary::{check_summary_steps, write_summary};

#[cfg(test)]
mod tests;
