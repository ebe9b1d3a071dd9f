//! `unas quality …`: the proxy-quality evaluation of one architecture, the validation of the
//! proxy against a longer budget (`calibrate`), and the recipe A vs B sample-efficiency study
//! (`recipes`).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use unas_evaluator::quality::metrics::kendall_tau;
use unas_evaluator::quality::proxy::{Proxy, ProxyConfig};
use unas_evaluator::quality::train::Recipe;
use unas_space::rng::Rng;
use unas_space::{load_arch, SearchSpace, UNetArch};

use super::{CliError, CmdResult};

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
    /// Validate the proxy: score N architectures spanning a space at the proxy budget and at a
    /// FACTOR times longer budget; report Kendall τ between the rankings, and the τ that the
    /// parameter count alone reaches.
    Calibrate(CalibrateArgs),
    /// Sample efficiency of the seed's recipe: train one architecture with recipe A
    /// (scaled-linear betas, epsilon) and recipe B (cosine, v-prediction, zero terminal SNR,
    /// Min-SNR-γ) at equal budget and score both at several sampling-step counts.
    Recipes(RecipesArgs),
}

/// Proxy settings; each overrides the value from `--config` (or the default).
#[derive(Args, Clone)]
struct ProxyArgs {
    /// A study file (its `[quality]` table) or a TOML file with the proxy settings.
    #[arg(long)]
    config: Option<PathBuf>,
    /// builtin, fashion-mnist or a folder of captioned images.
    #[arg(long)]
    data: Option<String>,
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
    /// Cache folder (trained VAE, latents, text embeddings, extractor).
    #[arg(long)]
    cache: Option<PathBuf>,
}

impl ProxyArgs {
    fn resolve(&self) -> Result<ProxyConfig, CliError> {
        let mut cfg = match &self.config {
            None => ProxyConfig::default(),
            Some(path) => read_proxy_config(path)?,
        };
        if let Some(v) = &self.data {
            cfg.data = v.clone();
        }
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
        if let Some(v) = &self.cache {
            cfg.cache_dir = Some(v.clone());
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
fn read_proxy_config(path: &std::path::Path) -> Result<ProxyConfig, CliError> {
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

#[derive(Args)]
struct CalibrateArgs {
    /// Search space: preset or TOML file.
    #[arg(long, default_value = "tiny")]
    space: String,
    /// Architectures (spread over the space's parameter range).
    #[arg(short = 'n', long, default_value_t = 8)]
    count: usize,
    /// The long budget is FACTOR times the proxy's training steps.
    #[arg(long, default_value_t = 5)]
    factor: usize,
    /// Sampling seed of the architectures (and the candidates' seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Evaluations run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RecipesArgs {
    /// Architecture: preset or unas TOML file.
    #[arg(long, default_value = "tiny-nas")]
    arch: String,
    /// Sampling-step counts to score.
    #[arg(long, value_delimiter = ',', default_value = "10,20,30,50")]
    sampling_steps: Vec<usize>,
    /// Candidate seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// Also write the table as Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `unas quality …`.
pub fn run(args: QualityArgs) -> CmdResult {
    match args.command {
        Some(QualityCommand::Calibrate(a)) => calibrate(a),
        Some(QualityCommand::Recipes(a)) => recipes(a),
        None => evaluate_one(args),
    }
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar.set_message(msg.to_string());
    bar
}

/// Prints a line above the bar, or to stderr when the bar is hidden (not a terminal).
fn say(bar: &ProgressBar, line: impl AsRef<str>) {
    if bar.is_hidden() {
        eprintln!("{}", line.as_ref());
    } else {
        bar.println(line);
    }
}

fn prepare(cfg: &ProxyConfig, dim: usize) -> Result<Proxy, CliError> {
    let bar = spinner("preparing the proxy data");
    let proxy = Proxy::prepare(cfg, dim, &mut |line| say(&bar, line))
        .map_err(|e| CliError::failure(format!("preparing the proxy: {e}")))?;
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

/// `n` archs of `space` spread over its parameter range: 8n uniform samples sorted by
/// parameters, then evenly spaced picks.
fn spread(space: &SearchSpace, n: usize, seed: u64) -> Result<Vec<UNetArch>, CliError> {
    let mut rng = Rng::seed(seed);
    let mut pool = Vec::with_capacity(8 * n);
    for _ in 0..8 * n {
        let a = space.decode(&space.sample(&mut rng)?);
        pool.push((a.params().unwrap_or(0), a));
    }
    pool.sort_by_key(|p| p.0);
    pool.dedup_by(|a, b| a.1.hash_id() == b.1.hash_id());
    let m = pool.len();
    Ok((0..n)
        .map(|i| pool[(i * (m - 1)) / (n - 1).max(1)].1.clone())
        .collect())
}

fn calibrate(a: CalibrateArgs) -> CmdResult {
    if a.count < 3 {
        return Err(CliError::input("-n: at least 3 architectures are needed"));
    }
    if a.factor < 2 {
        return Err(CliError::input("--factor: must be at least 2"));
    }
    let space = SearchSpace::load(&a.space)?;
    let cfg = a.proxy.resolve()?;
    let archs = spread(&space, a.count, a.seed)?;
    let proxy = prepare(&cfg, space.stem.cross_attention_dim)?;
    let long_steps = cfg.steps * a.factor;
    let bar = ProgressBar::new(2 * archs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{wide_bar} {pos}/{len} evaluations {msg} [{elapsed} < {eta}]",
        )
        .expect("valid"),
    );
    // Longest first so the parallel jobs finish together.
    let mut tasks: Vec<(usize, usize)> = (0..archs.len())
        .flat_map(|i| [(i, long_steps), (i, cfg.steps)])
        .collect();
    tasks.reverse();
    let queue = std::sync::Mutex::new(tasks);
    let results = std::sync::Mutex::new(std::collections::BTreeMap::new());
    let failure = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..a.jobs.max(1) {
            scope.spawn(|| loop {
                let Some((i, steps)) = queue.lock().expect("queue").pop() else {
                    break;
                };
                let id = archs[i].hash_id();
                match proxy.evaluate_with(&archs[i], a.seed, steps) {
                    Ok(score) => {
                        say(
                            &bar,
                            format!(
                                "{id}  FD@{steps} {:>9.3}  ({:.0} s)",
                                score.fd,
                                score.train_seconds + score.sample_seconds
                            ),
                        );
                        results.lock().expect("results").insert((i, steps), score);
                    }
                    Err(e) => {
                        *failure.lock().expect("failure") = Some(format!("{id}: {e}"));
                        queue.lock().expect("queue").clear();
                    }
                }
                bar.inc(1);
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("failure") {
        return Err(CliError::failure(e));
    }
    let mut results = results.into_inner().expect("results");
    let rows: Vec<_> = archs
        .iter()
        .enumerate()
        .map(|(i, arch)| {
            let short = results.remove(&(i, cfg.steps)).expect("evaluated");
            let long = results.remove(&(i, long_steps)).expect("evaluated");
            (arch.hash_id(), arch.params().unwrap_or(0), short, long)
        })
        .collect();
    bar.finish_and_clear();
    let short: Vec<f64> = rows.iter().map(|r| r.2.fd).collect();
    let long: Vec<f64> = rows.iter().map(|r| r.3.fd).collect();
    // More parameters predicts a lower (better) FD: rank by −params.
    let params: Vec<f64> = rows.iter().map(|r| -(r.1 as f64)).collect();
    let tau_proxy = kendall_tau(&short, &long);
    let tau_params = kendall_tau(&params, &long);
    let mut md = String::new();
    md.push_str(&format!(
        "Proxy calibration: space `{}`, {} archs (seed {}), proxy {} steps vs long {} steps (x{}), batch {}, {} samples, {} DDIM steps, guidance {}, data {}\n\nmetric: {}\n\n",
        space.name, rows.len(), a.seed, cfg.steps, long_steps, a.factor, cfg.batch, cfg.samples,
        cfg.sampling_steps, cfg.guidance, cfg.data, rows[0].2.metric
    ));
    md.push_str(&format!(
        "| arch | params | FD proxy ({} steps) | FD long ({} steps) | KID proxy | KID long | adherence proxy | adherence long | proxy time (s) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        cfg.steps, long_steps
    ));
    for (id, params, s, l) in &rows {
        md.push_str(&format!(
            "| {id} | {params} | {:.3} | {:.3} | {:.5} | {:.5} | {:.3} | {:.3} | {:.1} |\n",
            s.fd,
            l.fd,
            s.kid,
            l.kid,
            s.adherence,
            l.adherence,
            s.train_seconds + s.sample_seconds
        ));
    }
    md.push_str(&format!(
        "\nKendall τ (proxy FD vs long FD): **{tau_proxy:.3}**\n\nKendall τ (parameter count, more = better, vs long FD): {tau_params:.3}\n"
    ));
    emit_markdown(&md, a.out.as_deref())
}

fn recipes(a: RecipesArgs) -> CmdResult {
    let arch = load_arch(&a.arch)?;
    if a.sampling_steps.is_empty() || a.sampling_steps.contains(&0) {
        return Err(CliError::input("--sampling-steps: positive step counts"));
    }
    let base = a.proxy.resolve()?;
    let mut md = format!(
        "Recipe study: arch `{}` ({}), {} training steps x batch {}, seed {}, {} samples, guidance {}, data {}\n\n| recipe | final loss | {} |\n|---|---:|{}\n",
        a.arch,
        arch.hash_id(),
        base.steps,
        base.batch,
        a.seed,
        base.samples,
        base.guidance,
        base.data,
        a.sampling_steps
            .iter()
            .map(|s| format!("FD @ {s} steps"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(a.sampling_steps.len())
    );
    let mut results = Vec::new();
    for (label, r) in [
        ("A (scaled-linear, epsilon)", Recipe::sd15()),
        (
            "B (cosine, v, zero terminal SNR, Min-SNR-5)",
            Recipe::decidiffusion(),
        ),
    ] {
        let cfg = ProxyConfig {
            recipe: r,
            ..base.clone()
        };
        let proxy = prepare(&cfg, arch.stem.cross_attention_dim)?;
        proxy.check_arch(&arch).map_err(CliError::input)?;
        let bar = spinner(&format!("recipe {label}: training {} steps", cfg.steps));
        let (unet, loss) = proxy
            .train(&arch, a.seed, cfg.steps, &mut |_, _| {})
            .map_err(|e| CliError::failure(format!("recipe {label}: {e}")))?;
        let mut fds = Vec::new();
        for &s in &a.sampling_steps {
            bar.set_message(format!("recipe {label}: sampling with {s} steps"));
            let images = proxy
                .sample(&unet, s)
                .map_err(|e| CliError::failure(format!("recipe {label}: {e}")))?;
            let (fd, _, _) = proxy.score(&images).map_err(CliError::failure)?;
            fds.push(fd);
        }
        bar.finish_and_clear();
        md.push_str(&format!(
            "| {label} | {loss:.4} | {} |\n",
            fds.iter()
                .map(|f| format!("{f:.3}"))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        results.push((fds, proxy.metric_label(a.sampling_steps[0])));
    }
    let find = |s: usize| a.sampling_steps.iter().position(|&x| x == s);
    if let (Some(i30), Some(i50)) = (find(30), find(50)) {
        let (b30, a50) = (results[1].0[i30], results[0].0[i50]);
        md.push_str(&format!(
            "\nB at 30 steps: FD {b30:.3}; A at 50 steps: FD {a50:.3} → B@30 {} A@50.\n",
            if b30 <= a50 { "≤" } else { ">" }
        ));
    }
    md.push_str(&format!(
        "\nmetric: {} (DDIM steps: per column)\n",
        results[0].1
    ));
    emit_markdown(&md, a.out.as_deref())
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
