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

#[derive(Args)]
struct CalibrateArgs {
    /// Search space: preset or TOML file.
    #[arg(long, default_value = "tiny")]
    space: String,
    /// Architectures, stratified over the space's cost range (the cheapest and the most
    /// expensive included); fixed once written to OUT/archs/.
    #[arg(short = 'n', long, default_value_t = 12)]
    count: usize,
    /// Ground-truth seeds per architecture (0..SEEDS; each seed's data, timestep and noise
    /// draws are shared by all architectures).
    #[arg(long, default_value_t = 4)]
    seeds: u64,
    /// Ground-truth budget: training steps from scratch (the proxy's recipe, batch and data).
    #[arg(long, default_value_t = 400)]
    steps: usize,
    /// Learning-curve points: the validation loss of the current iterate after these steps
    /// (also kept in ground_truth.csv, as `iterate` rows).
    #[arg(long, value_delimiter = ',', default_value = "60,150,250")]
    budgets: Vec<usize>,
    /// Cost used to stratify the architectures: a latency lookup table (lut:FILE) at the
    /// space's constraint setting, or `macs`.
    #[arg(long, default_value = "macs")]
    cost: String,
    /// Trained supernets to score as proxies: a folder of `unas supernet train` outputs (one
    /// sub-folder per topology and seed). Proxies `supernet-val-loss` (zero-shot validation
    /// loss with inherited weights) and `supernet-val-loss-rel` (the same minus the supernet's
    /// level: the mean over a fixed reference panel of its sub-networks, which removes the
    /// offset between supernet seeds).
    #[arg(long)]
    supernets: Option<PathBuf>,
    /// Also score each architecture of each --supernets supernet after K steps of fine-tuning
    /// from its inherited weights (same batches, timesteps and noise for every candidate):
    /// proxy `supernet-finetune@K`.
    #[arg(long, value_name = "K")]
    finetune: Option<usize>,
    /// Trainings run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Stop after this many new ground-truth trainings (the rest on the next run).
    #[arg(long)]
    max_runs: Option<usize>,
    /// Train the ground truth of these architectures only (comma-separated: their index in
    /// OUT/archs/, as in `03-…`, or a prefix of their id of ≥ 4 characters); the others on a
    /// later run.
    #[arg(long, value_delimiter = ',')]
    archs: Vec<String>,
    /// Only recompute the summary from the tables in OUT.
    #[arg(long)]
    summary_only: bool,
    /// The proxy's data and training settings (batch, recipe) come from `--config`.
    #[command(flatten)]
    proxy: DataArgs,
    /// Output folder: archs/, ground_truth.csv, proxy_scores.csv, summary.csv, README.md.
    #[arg(long, default_value = "docs/calibration")]
    out: PathBuf,
}

#[derive(Args)]
struct RecipesArgs {
    /// Architecture: preset or unas TOML file.
    #[arg(long, default_value = "tiny-nas")]
    arch: String,
    /// Sampling-step counts to score (comma-separated; named apart from the proxy's single
    /// `--sampling-steps`).
    #[arg(long, value_delimiter = ',', default_value = "10,20,30,50")]
    compare_steps: Vec<usize>,
    /// Training seeds (comma-separated): each trains both recipes, so A and B of one seed share
    /// the initialisation, data order and sampling noise and are compared pairwise.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    seeds: Vec<u64>,
    /// The claim tested: B at the first step count against A at the second (both must be in
    /// `--compare-steps`).
    #[arg(long, value_delimiter = ',', default_value = "30,50")]
    claim: Vec<usize>,
    /// Trainings run in parallel.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// Output folder: `recipes.csv` (one row per recipe, seed and step count, appended as
    /// results come: a rerun resumes) and `README.md` (the summary).
    #[arg(long, default_value = "docs/recipe-study")]
    out: PathBuf,
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

/// The calibration architectures: those in OUT/archs/ (sorted by file name), or `n` picked
/// from `space` stratified over `cost` and written there.
fn calibration_archs(
    space: &SearchSpace,
    a: &CalibrateArgs,
) -> Result<Vec<(String, UNetArch)>, CliError> {
    let dir = a.out.join("archs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if !files.is_empty() {
        return files
            .iter()
            .map(|f| {
                let arch = load_arch(f.to_str().unwrap_or_default())?;
                let rel = format!(
                    "archs/{}",
                    f.file_name().unwrap_or_default().to_string_lossy()
                );
                Ok((rel, arch))
            })
            .collect();
    }
    let c = &space.constraints;
    let cost: Box<dyn Fn(&UNetArch) -> f64> = match a.cost.strip_prefix("lut:") {
        Some(file) => {
            use unas_evaluator::latency::lut::LookupTable;
            use unas_evaluator::latency::{Dtype, LatencyModel, LatencySetting};
            let lut = LookupTable::load(std::path::Path::new(file)).map_err(CliError::input)?;
            let setting = LatencySetting {
                latent: c.latent,
                batch: c.batch,
                text_len: c.text_len,
                dtype: Dtype::F32,
            };
            Box::new(move |arch| lut.predict(arch, &setting).map_or(f64::NAN, |r| r.total_ms))
        }
        None if a.cost == "macs" => {
            let q = unas_space::CostQuery {
                height: c.latent,
                width: c.latent,
                batch: c.batch,
                text_len: c.text_len,
            };
            Box::new(move |arch| {
                arch.plan()
                    .ok()
                    .and_then(|p| p.cost(&q).ok())
                    .map_or(f64::NAN, |c| c.macs as f64)
            })
        }
        None => {
            return Err(CliError::input(format!(
                "--cost: `{}`: expected macs or lut:FILE",
                a.cost
            )))
        }
    };
    let archs =
        unas_evaluator::quality::calibration::pick_archs(space, a.count, 40 * a.count, 0, &*cost)
            .map_err(CliError::input)?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::failure(format!("{}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for (i, arch) in archs.into_iter().enumerate() {
        let rel = format!("archs/{i:02}-{}.toml", arch.hash_id());
        let mut named = arch.clone();
        named.name = format!("calibration-{i:02}");
        let text = toml::to_string(&named).map_err(CliError::failure)?;
        let file = a.out.join(&rel);
        std::fs::write(&file, text)
            .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
        out.push((rel, named));
    }
    Ok(out)
}

fn calibrate(a: CalibrateArgs) -> CmdResult {
    use unas_evaluator::quality::calibration::*;
    if a.count < 3 {
        return Err(CliError::input("-n: at least 3 architectures are needed"));
    }
    if a.seeds == 0 || a.steps == 0 {
        return Err(CliError::input("--seeds and --steps: at least 1"));
    }
    if a.finetune == Some(0) {
        return Err(CliError::input("--finetune: at least 1 step"));
    }
    if a.budgets.iter().any(|&b| b == 0 || b >= a.steps) {
        return Err(CliError::input(format!(
            "--budgets: learning-curve points must lie in 1..{}",
            a.steps
        )));
    }
    let space = SearchSpace::load(&a.space)?;
    std::fs::create_dir_all(&a.out)
        .map_err(|e| CliError::failure(format!("{}: {e}", a.out.display())))?;
    let archs = calibration_archs(&space, &a)?;
    let gt_file = a.out.join("ground_truth.csv");
    let px_file = a.out.join("proxy_scores.csv");
    let mut gt = read_ground_truth(&gt_file).map_err(CliError::input)?;
    let mut px = read_proxy_scores(&px_file).map_err(CliError::input)?;

    if !a.summary_only {
        let cfg = a.proxy.resolve()?;
        let only = selected_archs(&a.archs, &archs)?;
        let settings_to_write = ground_truth_settings(&a.out, &cfg, a.steps)?;
        if let Some(k) = a.finetune {
            cfg.recipe
                .ema_window(k)
                .map_err(|m| CliError::input(format!("--finetune {k}: {m}")))?;
        }
        let proxy = prepare(&cfg, space.stem.cross_attention_dim)?;
        for (_, arch) in &archs {
            proxy.check_arch(arch).map_err(CliError::input)?;
        }
        let val = proxy.validation_set();
        // Ground truth: every (arch, seed) without a final row at `steps`.
        let done: std::collections::BTreeSet<(String, u64)> = gt
            .iter()
            .filter(|r| r.steps == a.steps && r.weights == "final")
            .map(|r| (r.arch.clone(), r.seed))
            .collect();
        let mut tasks: Vec<(usize, u64)> = (0..a.seeds)
            .flat_map(|s| (0..archs.len()).map(move |i| (i, s)))
            .filter(|&(i, s)| !done.contains(&(archs[i].1.hash_id(), s)))
            .filter(|&(i, _)| only.as_ref().is_none_or(|o| o.contains(&i)))
            .collect();
        if let Some(m) = a.max_runs {
            tasks.truncate(m);
        }
        if let (Some((file, text)), false) = (&settings_to_write, tasks.is_empty()) {
            std::fs::write(file, text)
                .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
        }
        let bar = progress::bar(tasks.len(), TRAININGS);
        say(
            &bar,
            format!(
                "ground truth: {} trainings of {} steps to run ({} done); {}",
                tasks.len(),
                a.steps,
                done.len(),
                val.label()
            ),
        );
        let written = std::sync::Mutex::new(Vec::new());
        run_queue(tasks, a.jobs, &bar, |(i, seed)| {
            let (file, arch) = &archs[i];
            let id = arch.hash_id();
            let t0 = Instant::now();
            let row = |steps: usize, weights: &str, v: f64| GroundTruthRow {
                arch: id.clone(),
                arch_file: file.clone(),
                seed,
                steps,
                weights: weights.into(),
                val_loss: v,
                fd: None,
                kid: None,
            };
            let mut points = Vec::new();
            let l = proxy
                .train_curve(arch, seed, a.steps, &a.budgets, &val, &mut |k, l| {
                    points.push(row(k, "iterate", l.overall));
                })
                .map_err(|e| format!("{id} seed {seed}: {e}"))?;
            points.push(row(a.steps, "final", l.overall));
            append_ground_truth(&gt_file, &points).map_err(|e| e.to_string())?;
            written.lock().expect("rows").extend(points);
            Ok(format!(
                "{id} seed {seed}: val loss {:.5} after {} steps ({:.0} s)",
                l.overall,
                a.steps,
                t0.elapsed().as_secs_f64()
            ))
        })?;
        gt.extend(written.into_inner().expect("rows"));

        // Deterministic proxies: parameters and MACs (more = predicted better: negated).
        let have: std::collections::BTreeSet<(String, String, u64)> = px
            .iter()
            .map(|r| (r.arch.clone(), r.proxy.clone(), r.supernet_seed))
            .collect();
        let c = &space.constraints;
        let q = unas_space::CostQuery {
            height: c.latent,
            width: c.latent,
            batch: c.batch,
            text_len: c.text_len,
        };
        let mut new_rows = Vec::new();
        for (_, arch) in &archs {
            let id = arch.hash_id();
            let plan = arch.plan().map_err(CliError::failure)?;
            let cost = plan.cost(&q).map_err(CliError::failure)?;
            for (name, v) in [("params", cost.params as f64), ("macs", cost.macs as f64)] {
                if !have.contains(&(id.clone(), name.to_string(), 0)) {
                    new_rows.push(ProxyRow {
                        arch: id.clone(),
                        proxy: name.into(),
                        supernet_seed: 0,
                        score: -v,
                    });
                }
            }
        }
        // Supernet zero-shot validation loss, for every supernet folder given.
        if let Some(root) = &a.supernets {
            let dirs = unas_evaluator::quality::supernet_store::supernet_dirs(root)
                .map_err(|e| CliError::input(format!("--supernets: {e}")))?;
            for dir in dirs {
                let (info, unet) =
                    unas_evaluator::quality::supernet_store::load(&dir).map_err(CliError::input)?;
                if info.data != proxy.describe_data() {
                    return Err(CliError::input(format!(
                        "{}: trained on {}, the calibration data is {}",
                        dir.display(),
                        info.data,
                        proxy.describe_data()
                    )));
                }
                for (_, arch) in &archs {
                    if unas_evaluator::quality::supernet_store::holds(&info, arch).is_err() {
                        continue;
                    }
                    let id = arch.hash_id();
                    let seed = info.settings.seed;
                    let missing =
                        |name: &str| !have.contains(&(id.clone(), name.to_string(), seed));
                    if missing("supernet-val-loss") {
                        let l = unas_evaluator::quality::supernet_store::score(
                            &info,
                            &unet,
                            arch,
                            &val,
                            unas_evaluator::quality::proxy::VAL_BATCH,
                        )
                        .map_err(CliError::failure)?;
                        eprintln!(
                            "{id} supernet seed {seed}: zero-shot val loss {:.5}",
                            l.overall
                        );
                        new_rows.push(ProxyRow {
                            arch: id.clone(),
                            proxy: "supernet-val-loss".into(),
                            supernet_seed: seed,
                            score: l.overall,
                        });
                    }
                    if let Some(k) = a.finetune {
                        let name = format!("supernet-finetune@{k}");
                        if missing(&name) {
                            let l = unas_evaluator::quality::supernet_scorer::finetuned(
                                &proxy, &info, &unet, arch, k, &val,
                            )
                            .map_err(CliError::failure)?;
                            eprintln!("{id} supernet seed {seed}: val loss {:.5} after {k} fine-tuning steps", l.overall);
                            new_rows.push(ProxyRow {
                                arch: id.clone(),
                                proxy: name,
                                supernet_seed: seed,
                                score: l.overall,
                            });
                        }
                    }
                }
                // The same scores relative to the supernet's level (the mean over its fixed
                // reference panel, computed once per supernet): `supernet-val-loss-rel`.
                let seed = info.settings.seed;
                let raw = |id: &str| {
                    px.iter().chain(&new_rows).find_map(|r| {
                        (r.arch == id && r.proxy == "supernet-val-loss" && r.supernet_seed == seed)
                            .then_some(r.score)
                    })
                };
                let need: Vec<(String, f64)> = archs
                    .iter()
                    .map(|(_, arch)| arch.hash_id())
                    .filter(|id| !have.contains(&(id.clone(), REL.to_string(), seed)))
                    .filter_map(|id| raw(&id).map(|v| (id, v)))
                    .collect();
                if !need.is_empty() {
                    let level = unas_evaluator::quality::supernet_panel::level(
                        &info,
                        &unet,
                        &val,
                        unas_evaluator::quality::proxy::VAL_BATCH,
                    )
                    .map_err(CliError::failure)?;
                    eprintln!(
                        "supernet seed {seed}: level {level:.5} (mean zero-shot val loss of its \
                         reference panel)"
                    );
                    for (id, v) in need {
                        new_rows.push(ProxyRow {
                            arch: id,
                            proxy: REL.into(),
                            supernet_seed: seed,
                            score: v - level,
                        });
                    }
                }
            }
        }
        append_proxy_scores(&px_file, &new_rows).map_err(CliError::failure)?;
        px.extend(new_rows);
    } else {
        check_summary_steps(&a.out, &gt_file, &gt, a.steps)?;
    }
    write_summary(&a, &archs, &gt, &px)
}

/// `--summary-only` on a folder trained at another budget would summarise nothing (every mean
/// empty): refused, naming the recorded protocol's `steps` or the steps the table has.
fn check_summary_steps(
    out: &std::path::Path,
    gt_file: &std::path::Path,
    gt: &[unas_evaluator::quality::calibration::GroundTruthRow],
    steps: usize,
) -> CmdResult {
    if let Some((file, was)) = read_gt_settings(out)? {
        if let Some(k) = was["steps"].as_u64().filter(|&k| k != steps as u64) {
            return Err(CliError::input(format!(
                "{}: field `steps`: this folder's ground truth is {k} steps, --steps is {steps} \
                 (pass --steps {k})",
                file.display()
            )));
        }
    }
    let finals: std::collections::BTreeSet<usize> = gt
        .iter()
        .filter(|r| r.weights == "final")
        .map(|r| r.steps)
        .collect();
    if !finals.is_empty() && !finals.contains(&steps) {
        return Err(CliError::input(format!(
            "{}: no `final` rows at --steps {steps} (the table has {finals:?})",
            gt_file.display()
        )));
    }
    Ok(())
}

/// The positions in `archs` named by `--archs` (indices or id prefixes); `None` = all.
fn selected_archs(
    names: &[String],
    archs: &[(String, UNetArch)],
) -> Result<Option<std::collections::BTreeSet<usize>>, CliError> {
    if names.is_empty() {
        return Ok(None);
    }
    let mut out = std::collections::BTreeSet::new();
    for name in names {
        let name = name.trim();
        // Up to 3 digits: an index; else an id prefix of at least 4 characters.
        let found: Vec<usize> = match name.parse::<usize>() {
            Ok(i) if name.len() <= 3 => (i < archs.len()).then_some(i).into_iter().collect(),
            _ if name.len() >= 4 => (0..archs.len())
                .filter(|&i| archs[i].1.hash_id().starts_with(name))
                .collect(),
            _ => Vec::new(),
        };
        match found.as_slice() {
            [i] => {
                out.insert(*i);
            }
            [] => {
                return Err(CliError::input(format!(
                    "--archs: `{name}` is neither an index below {} nor a prefix (4 or more \
                     characters) of an architecture id",
                    archs.len()
                )))
            }
            _ => {
                return Err(CliError::input(format!(
                    "--archs: `{name}` is the prefix of {} architecture ids",
                    found.len()
                )))
            }
        }
    }
    Ok(Some(out))
}

/// The ground-truth protocol of a calibration folder, `OUT/ground_truth_settings.json` (the
/// training recipe, batch and budget): written by the first training run, and every later run
/// must use the same, so rows of two protocols never mix in one mean. `Err` when the folder's
/// differs; `Some((file, text))` when the folder has none yet (to write once training starts).
fn ground_truth_settings(
    out: &std::path::Path,
    cfg: &ProxyConfig,
    steps: usize,
) -> Result<Option<(PathBuf, String)>, CliError> {
    let file = out.join(GT_SETTINGS);
    let now = serde_json::json!({
        "steps": steps,
        "batch": cfg.batch,
        "recipe": cfg.recipe,
    });
    match read_gt_settings(out)? {
        Some((file, was)) => {
            if was != now {
                return Err(CliError::input(format!(
                    "{}: this folder's ground truth was trained with {was}; --config and \
                     --steps give {now}: use another --out",
                    file.display()
                )));
            }
            Ok(None)
        }
        None => {
            let text = serde_json::to_string_pretty(&now).expect("serialisable") + "\n";
            Ok(Some((file, text)))
        }
    }
}

/// The folder's recorded ground-truth protocol (`None` when it has none yet).
fn read_gt_settings(
    out: &std::path::Path,
) -> Result<Option<(PathBuf, serde_json::Value)>, CliError> {
    let file = out.join(GT_SETTINGS);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            let was = serde_json::from_str(&text)
                .map_err(|e| CliError::input(format!("{}: {e}", file.display())))?;
            Ok(Some((file, was)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::input(format!("{}: {e}", file.display()))),
    }
}

/// File of a calibration folder naming its ground-truth protocol.
const GT_SETTINGS: &str = "ground_truth_settings.json";

/// summary.csv and README.md of a calibration folder, from its tables.
fn write_summary(
    a: &CalibrateArgs,
    archs: &[(String, UNetArch)],
    gt: &[unas_evaluator::quality::calibration::GroundTruthRow],
    px: &[unas_evaluator::quality::calibration::ProxyRow],
) -> CmdResult {
    use unas_evaluator::quality::calibration::*;
    let (means, seeds) = ground_truth_means(gt, a.steps, "final");
    let table = seed_table(gt, a.steps, "final");
    // Early from-scratch losses as proxies: one seed (0), as a search would use them.
    let mut all = px.to_vec();
    for &b in &a.budgets {
        for r in gt
            .iter()
            .filter(|r| r.steps == b && r.weights == "iterate" && r.seed == 0)
        {
            all.push(ProxyRow {
                arch: r.arch.clone(),
                proxy: format!("scratch-val-loss@{b}"),
                supernet_seed: 0,
                score: r.val_loss,
            });
        }
    }
    let mut agreements = agreements(&means, &all, 2000);
    let ceiling_row = noise_ceiling_row(&table, 2000);
    agreements.extend(ceiling_row.clone());
    let mut csv = String::from(SUMMARY_HEADER);
    csv.push('\n');
    for g in &agreements {
        csv.push_str(&g.csv());
        csv.push('\n');
    }
    let write = |name: &str, text: &str| {
        let f = a.out.join(name);
        std::fs::write(&f, text).map_err(|e| CliError::failure(format!("{}: {e}", f.display())))
    };
    write("summary.csv", &csv)?;
    let n = means.len();
    let mut md = format!(
        "# Calibration tables (written by `unas quality calibrate`)\n\n\
         Space `{}`; {} architectures in `archs/`; ground truth: validation loss after {} steps \
         from scratch (`final` rows of `ground_truth.csv`), mean over the {} seed(s) every \
         architecture has ({:?}). The no-signal sd of Kendall τ at n = {n} is {:.3}.\n\n",
        a.space,
        archs.len(),
        a.steps,
        seeds.len(),
        seeds,
        if n >= 2 { tau_null_sd(n) } else { f64::NAN },
    );
    if let Ok(text) = std::fs::read_to_string(a.out.join(GT_SETTINGS)) {
        md.push_str(&format!(
            "Ground-truth protocol (`{GT_SETTINGS}`): `{}`.\n\n",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    match &ceiling_row {
        Some(c) => md.push_str(&format!(
            "Noise ceiling of the ground truth (τ between the means of the two halves of the \
             seeds, row `{NOISE_CEILING_ROW}`): **{:.3}** [{:.3}, {:.3}]; ICC(1) over seeds: \
             {:.3}, consistency ICC(C,1): {:.3}.{}\n\n",
            c.tau,
            c.tau_low,
            c.tau_high,
            c.icc.unwrap_or(f64::NAN),
            c.icc_consistency.unwrap_or(f64::NAN),
            match noise_ceiling_splits(&table) {
                Some((mean, min, max, k)) if k > 1 => format!(
                    " Over all {k} ways of splitting the seeds into halves of that size: \
                     mean {mean:.3}, range [{min:.3}, {max:.3}] (the row above is the first \
                     seeds against the rest)."
                ),
                _ => String::new(),
            }
        )),
        None => md.push_str("Noise ceiling: needs ≥ 2 seeds of ≥ 3 architectures.\n\n"),
    }
    md.push_str(
        "| proxy | n | τ | τ 95 % CI | Spearman ρ | ICC(1) | ICC(C,1) |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
    );
    let cell = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}"));
    for g in agreements.iter().filter(|g| g.proxy != NOISE_CEILING_ROW) {
        md.push_str(&format!(
            "| {} | {} | {:.3} | [{:.3}, {:.3}] | {:.3} | {} | {} |\n",
            g.proxy,
            g.n,
            g.tau,
            g.tau_low,
            g.tau_high,
            g.spearman,
            cell(g.icc),
            cell(g.icc_consistency)
        ));
    }
    md.push_str(
        "\nScores are oriented lower = better (parameters and MACs negated: more is predicted \
         better). τ is τ-b against the ground-truth mean; CIs are percentile bootstraps over \
         architectures (2000 resamples). ICCs are over the proxy's repeats (supernet seeds): \
         ICC(1) counts a per-seed offset as disagreement, the consistency ICC(C,1) does not. \
         `scratch-val-loss@B` is the validation loss after B \
         steps of seed 0's ground-truth run itself: while seed 0 is part of the ground-truth \
         mean it is not an independent proxy (an upper bound for early stopping).\n",
    );
    let budgets: Vec<String> = a.budgets.iter().map(|b| b.to_string()).collect();
    md.push_str(&format!(
        "\nRecompute with `unas quality calibrate --space {} --steps {} --budgets {} \
         --summary-only --out DIR`.\n",
        a.space,
        a.steps,
        budgets.join(",")
    ));
    write("README.md", &md)?;
    print!("{md}");
    Ok(())
}

fn recipes(a: RecipesArgs) -> CmdResult {
    use unas_evaluator::quality::recipe_study::*;
    let arch = load_arch(&a.arch)?;
    if a.compare_steps.is_empty() || a.compare_steps.contains(&0) {
        return Err(CliError::input("--compare-steps: positive step counts"));
    }
    if a.seeds.is_empty() {
        return Err(CliError::input("--seeds: at least one seed"));
    }
    let claim = match a.claim[..] {
        [b, x] if a.compare_steps.contains(&b) && a.compare_steps.contains(&x) => (b, x),
        _ => {
            return Err(CliError::input(
                "--claim: two step counts B,A, both in --compare-steps",
            ))
        }
    };
    let base = a.proxy.resolve()?;
    let settings = settings_key(&arch.hash_id(), &base, &a.compare_steps);
    std::fs::create_dir_all(&a.out)
        .map_err(|e| CliError::failure(format!("{}: {e}", a.out.display())))?;
    let file = a.out.join("recipes.csv");
    let rows = read_recipe_rows(&file).map_err(CliError::input)?;
    if let Some(r) = rows.iter().find(|r| r.settings != settings) {
        return Err(CliError::input(format!(
            "{}: field `settings`: rows of other settings ({}; these are {settings}): use another --out",
            file.display(),
            r.settings
        )));
    }
    let recipes = [("A", Recipe::sd15()), ("B", Recipe::decidiffusion())];
    let mut proxies = Vec::new();
    for (_, r) in &recipes {
        let cfg = ProxyConfig {
            recipe: with_schedule_of(&base.recipe, r),
            ..base.clone()
        };
        let proxy = prepare(&cfg, arch.stem.cross_attention_dim)?;
        proxy.check_arch(&arch).map_err(CliError::input)?;
        proxies.push(proxy);
    }
    let have = |recipe: &str, seed: u64| {
        a.compare_steps.iter().all(|&s| {
            rows.iter()
                .any(|r| r.recipe == recipe && r.seed == seed && r.sampling_steps == s)
        })
    };
    let tasks: Vec<(usize, u64)> = a
        .seeds
        .iter()
        .flat_map(|&s| (0..recipes.len()).map(move |i| (i, s)))
        .filter(|&(i, s)| !have(recipes[i].0, s))
        .collect();
    let bar = progress::bar(tasks.len(), TRAININGS);
    say(
        &bar,
        format!(
            "recipe study: {} trainings of {} steps to run ({} rows kept in {})",
            tasks.len(),
            base.steps,
            rows.len(),
            file.display()
        ),
    );
    let write = std::sync::Mutex::new(());
    run_queue(tasks, a.jobs, &bar, |(i, seed)| {
        let (name, proxy) = (recipes[i].0, &proxies[i]);
        let t0 = Instant::now();
        let run = || -> Result<Vec<RecipeRow>, String> {
            let (unet, loss) = proxy
                .train(&arch, seed, base.steps, &mut |_, _| {})
                .map_err(|e| e.to_string())?;
            let mut out = Vec::new();
            for &s in &a.compare_steps {
                let images = proxy.sample(&unet, s).map_err(|e| e.to_string())?;
                let (fd, kid, adherence) = proxy.score(&images).map_err(|e| e.to_string())?;
                out.push(RecipeRow {
                    recipe: name.into(),
                    seed,
                    sampling_steps: s,
                    final_loss: loss,
                    fd,
                    kid: kid.mean,
                    adherence,
                    settings: settings.clone(),
                });
            }
            Ok(out)
        };
        let out = run().map_err(|e| format!("recipe {name} seed {seed}: {e}"))?;
        {
            let _g = write.lock().expect("write");
            append_recipe_rows(&file, &out)
                .map_err(|e| format!("recipe {name} seed {seed}: {e}"))?;
        }
        Ok(format!(
            "recipe {name} seed {seed}: FD {} ({:.0} s)",
            out.iter()
                .map(|r| format!("{:.1} @ {}", r.fd, r.sampling_steps))
                .collect::<Vec<_>>()
                .join(", "),
            t0.elapsed().as_secs_f64()
        ))
    })?;
    let rows = read_recipe_rows(&file).map_err(CliError::failure)?;
    let md = format!(
        "# Recipe study (written by `unas quality recipes`)\n\nArchitecture `{}` ({}), {} training steps x batch {}, {} samples per cell, guidance {}, data {}; learning rate {}, EMA fraction {} for both; recipe A: scaled-linear betas, epsilon, plain MSE (SD1.5); recipe B: cosine betas, v-prediction, zero terminal SNR, Min-SNR-5 (DeciDiffusion). Settings hash `{settings}`.\n\n{}\nMetric: `{}` (DDIM steps: per row). FD and KID are on the proxy's feature extractor (not FID); final losses are not comparable between recipes (different targets and weights).\n",
        a.arch,
        arch.hash_id(),
        base.steps,
        base.batch,
        base.samples,
        base.guidance,
        base.data,
        base.recipe.lr,
        base.recipe.ema_fraction,
        summary_markdown(&rows, &a.compare_steps, claim),
        proxies[1].metric_label(a.compare_steps[0]),
    );
    emit_markdown(&md, Some(&a.out.join("README.md")))
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

#[cfg(test)]
mod tests;
