//! `unas search` (run or resume a study, then report and export the knee), `unas search
//! benchmark` (strategies vs random search), `unas report RUN_DIR` and `unas export RUN_DIR`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use unas_evaluator::latency::LatencyModel;
use unas_evaluator::EvalError;
use unas_reports::{Pick, ReportError, ReportInput, SampleGrid, SampleGrids};
use unas_search::proxy_quality::ProxyQuality;
use unas_search::quality_cache::{cache_file, FileCache, OnMiss};
use unas_search::{
    strategy_benchmark, ControllerConfig, Evaluators, Progress, QualityEvaluator, SearchError,
    StudyConfig, TrialRecord, TrialStatus,
};

use super::progress;
use super::{CliError, CmdResult};

/// `unas search`: run a study (or `benchmark` the strategies).
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SearchArgs {
    #[command(subcommand)]
    command: Option<SearchCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum SearchCommand {
    /// Aging evolution and NSGA-II against random search at equal trial budgets over several
    /// seeds, on a study file's objectives; quality evaluations are cached by arch hash in the
    /// output folder, across runs and invocations. Prints and writes mean hypervolumes and the
    /// ratios to random search.
    Benchmark(BenchmarkArgs),
    /// Serve the study's objectives over stdin/stdout (JSON lines) for an outside sampler:
    /// first a line with the space's knobs as categorical lists and the budget, then for each
    /// request `{"choices": {KNOB: INDEX, …}}` one reply with the candidate's hash, status,
    /// latency, quality and constraint violation. Quality evaluations share the benchmark's
    /// cache (tools/optuna_nsga2.py drives Optuna's NSGA-II with it).
    Evaluate(EvaluateArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Study file (TOML; see configs/quickstart.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run directory (default runs/<study name>/): holds the trial store study.sqlite, a copy
    /// of the study file, the report and the exported U-Net.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the study in this run directory (with its stored settings).
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// Worker threads (default: the study's `jobs`); does not change which trials run.
    #[arg(long)]
    jobs: Option<usize>,
    /// Log lines (one per finished trial) instead of a progress bar; the default when stderr
    /// is not a terminal.
    #[arg(long)]
    quiet: bool,
    /// Trial store instead of the run directory's study.sqlite: a PostgreSQL URL
    /// (`postgres://user:password@host:port/db`) or a SQLite file; see docs/distributed.md.
    #[arg(long)]
    store: Option<String>,
    /// Who evaluates the trials: `local` (this process, --jobs threads) or `external`
    /// (`unas worker` processes sharing --store; this process only proposes and waits).
    #[arg(long, default_value = "local", value_parser = ["local", "external"])]
    workers: String,
    #[command(flatten)]
    lease: super::worker::LeaseArgs,
}

/// `unas report RUN_DIR`.
#[derive(Args)]
pub struct ReportArgs {
    /// Run directory of a study.
    run_dir: PathBuf,
    /// Where to write the report (default: the run directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read the trials from this store (a PostgreSQL URL; the study is the one named in
    /// RUN_DIR/study.toml) instead of RUN_DIR/study.sqlite; works while the study runs.
    #[arg(long)]
    store: Option<String>,
    /// (Re)draw the sample grids of the front and the references into RUN_DIR/samples/
    /// (supernet objectives; prepares the proxy's data and supernets on this machine), e.g.
    /// for a study evaluated by external workers.
    #[arg(long)]
    samples: bool,
}

/// `unas export RUN_DIR --pick …`.
#[derive(Args)]
pub struct ExportArgs {
    /// Run directory of a study.
    run_dir: PathBuf,
    /// knee, fastest, best-under:MS (best quality at or under MS ms per step) or a trial number.
    #[arg(long, default_value = "knee")]
    pick: String,
    /// Folder for unet-nas.toml and config.json (default: the run directory).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Read the trials from this store (see `unas report --store`).
    #[arg(long)]
    store: Option<String>,
    /// Also write the picked architecture's weights, inherited zero-shot from the study's
    /// supernet (`[quality] supernets`, or `--supernet`), as a diffusers U-Net folder: `unet/`
    /// (diffusers' layout) or `flexible_unet/` (DeciDiffusion's), with `config.json`,
    /// `diffusion_pytorch_model.safetensors` and `weights.json` (which supernet). Use it with
    /// `unas generate --model PIPELINE --unet DIR`.
    #[arg(long)]
    weights: bool,
    /// With `--weights`: the trained supernet folder (or a folder of them; the first that
    /// holds the architecture is used) instead of the study's.
    #[arg(long, requires = "weights")]
    supernet: Option<PathBuf>,
}

/// Exit code 2 for bad input (config, run directory, settings), 1 for failures while running.
fn search_err(e: SearchError) -> CliError {
    match e {
        SearchError::Config(_)
        | SearchError::InvalidConfig { .. }
        | SearchError::NoStudy { .. }
        | SearchError::SettingsMismatch { .. }
        | SearchError::Benchmark(_)
        | SearchError::SchemaTooNew { .. } => CliError::input(e),
        SearchError::Eval(EvalError::Measure(_) | EvalError::Diverged(_))
        | SearchError::Quality(EvalError::Measure(_) | EvalError::Diverged(_)) => {
            CliError::failure(e)
        }
        SearchError::Eval(_) | SearchError::Quality(_) => CliError::input(e),
        _ => CliError::failure(e),
    }
}

fn report_err(e: ReportError) -> CliError {
    match e {
        ReportError::Search(e) => search_err(e),
        ReportError::Pick { .. } => CliError::input(e),
        _ => CliError::failure(e),
    }
}

/// Errors of a config built in code name the study file.
fn in_file(file: &Path, e: SearchError) -> CliError {
    match e {
        SearchError::InvalidConfig { .. } => CliError::input(format!("{}: {e}", file.display())),
        e => search_err(e),
    }
}

fn is_nonempty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Runs the subcommand.
pub fn run(a: SearchArgs) -> CmdResult {
    match a.command {
        Some(SearchCommand::Benchmark(b)) => benchmark(b),
        Some(SearchCommand::Evaluate(e)) => evaluate(e),
        None => search(a.run),
    }
}

fn prepare_quality(
    cfg: &StudyConfig,
    cross_attention_dim: usize,
    quiet: bool,
) -> Result<ProxyQuality, CliError> {
    let t0 = Instant::now();
    let spinner = progress::spinner_unless(quiet, "quality proxy: preparing");
    let lines = progress::logs_lines(quiet, &spinner);
    let q = ProxyQuality::prepare(&cfg.quality, cross_attention_dim, &mut |line| {
        if lines {
            eprintln!("quality proxy: {line}");
        } else {
            spinner.set_message(format!("quality proxy: {line}"));
        }
    })
    .map_err(|e| match e {
        SearchError::Quality(EvalError::Config(_)) => CliError::input(format!("[quality]: {e}")),
        e => search_err(e),
    })?;
    spinner.finish_and_clear();
    eprintln!(
        "quality proxy ready in {:.1} s: {}",
        t0.elapsed().as_secs_f64(),
        q.describe()
    );
    Ok(q)
}

/// A command's quality evaluator: the test suite's fixture (a build with search's `testing`
/// feature and `UNAS_TEST_SYNTHETIC_QUALITY` set), else the prepared proxy.
pub(super) enum Quality {
    /// The synthetic TEST FIXTURE.
    Fixture(Box<dyn QualityEvaluator + Sync>),
    /// The study's quality proxy.
    Proxy(Box<ProxyQuality>),
}

impl Quality {
    /// The fixture when the hook is set, else the proxy of `cfg` prepared for candidates with
    /// `cross_attention_dim`.
    pub(super) fn prepare(
        cfg: &StudyConfig,
        cross_attention_dim: usize,
        quiet: bool,
    ) -> Result<Self, CliError> {
        Ok(match super::worker::test_fixture_quality()? {
            Some(q) => Self::Fixture(q),
            None => Self::Proxy(Box::new(prepare_quality(cfg, cross_attention_dim, quiet)?)),
        })
    }

    /// The evaluator.
    pub(super) fn get(&self) -> &(dyn QualityEvaluator + Sync) {
        match self {
            Self::Fixture(q) => q.as_ref(),
            Self::Proxy(p) => p.as_ref(),
        }
    }

    /// The proxy (none under the fixture).
    pub(super) fn proxy(&self) -> Option<&ProxyQuality> {
        match self {
            Self::Fixture(_) => None,
            Self::Proxy(p) => Some(p.as_ref()),
        }
    }
}

fn describe_trial(t: &TrialRecord) -> String {
    let lat = match (t.latency_ms, t.arch.sampling_steps) {
        (None, _) => "–".into(),
        (Some(l), None) => format!("{l:.2} ms"),
        (Some(l), Some(k)) => format!("{l:.2} ms per image at {k} steps"),
    };
    match t.status {
        TrialStatus::Done => format!("{lat}, quality {:.4}", t.quality.unwrap_or(f64::NAN)),
        TrialStatus::Infeasible => match t.quality {
            // References are scored even over a constraint.
            Some(q) => format!("{lat}, infeasible (scored anyway: quality {q:.4})"),
            None => format!("{lat}, infeasible"),
        },
        TrialStatus::Failed => {
            format!("failed: {}", t.error.as_deref().unwrap_or("unknown reason"))
        }
        s => s.as_str().to_string(),
    }
}

/// Resolves what a study file leaves to this machine before the study is created: a
/// time-to-image study's pipeline parts (`latency.image_parts`: the device profile's kernels,
/// or the proxy's text encoder and VAE decoder timed here) and a budget given as a quantile
/// (`latency.budget_quantile`); the latency model built for them is kept for the run.
fn resolve_for_this_machine(
    cfg: &mut StudyConfig,
    file: &Path,
    prebuilt: &mut Option<Box<dyn LatencyModel + Send + Sync>>,
) -> Result<(), CliError> {
    let parts_needed = cfg.latency.per_image() && cfg.latency.image_parts.is_none();
    let budget_needed = cfg.latency.budget_quantile.is_some() && cfg.latency.budget_ms <= 0.0;
    if !parts_needed && !budget_needed {
        return Ok(());
    }
    let space = cfg.load_space().map_err(|e| in_file(file, e))?;
    let model = cfg
        .latency
        .build_for(&space, &mut |l| eprintln!("latency: {l}"))
        .map_err(|e| in_file(file, e))?;
    let quality = cfg.quality.clone();
    let dim = space.stem.cross_attention_dim;
    let mut measure = |setting: &_| {
        eprintln!("time to an image: timing this machine's text encoder and VAE decoder");
        let proxy = unas_evaluator::quality::proxy::Proxy::prepare(&quality, dim, &mut |l| {
            eprintln!("quality proxy: {l}")
        })
        .map_err(SearchError::Quality)?;
        proxy.image_parts(setting, 9).map_err(SearchError::Quality)
    };
    if let Some(p) = cfg
        .resolve_image_parts(model.as_ref(), &mut measure)
        .map_err(|e| in_file(file, e))?
    {
        eprintln!(
            "time to an image: {:.3} ms per call for {} image(s) around the U-Net steps, \
             {:.3} ms per step beside the U-Net ({})",
            p.fixed_ms, p.images, p.step_extra_ms, p.source
        );
    }
    if let Some(b) = cfg
        .resolve_budget(&space, model.as_ref())
        .map_err(|e| in_file(file, e))?
    {
        eprintln!(
            "latency budget: {b:.2} ms{}, the {} quantile of this machine's predictions over \
             300 uniform samples of the space",
            if cfg.latency.per_image() {
                " per image"
            } else {
                ""
            },
            cfg.latency.budget_quantile.unwrap_or_default()
        );
    }
    *prebuilt = Some(model);
    Ok(())
}

fn search(a: RunArgs) -> CmdResult {
    let mut prebuilt = None;
    let (dir, mut study, config_file) = match (&a.resume, &a.config) {
        (Some(dir), config) => {
            let study = match config {
                Some(file) => {
                    let mut cfg = StudyConfig::load(file).map_err(search_err)?;
                    resolve_for_this_machine(&mut cfg, file, &mut prebuilt)?;
                    unas_search::run_dir::create_study(a.store.as_deref(), dir, cfg)
                        .map_err(|e| in_file(file, e))?
                }
                None => {
                    unas_search::run_dir::open_study(a.store.as_deref(), dir).map_err(search_err)?
                }
            };
            (dir.clone(), study, config.clone())
        }
        (None, Some(file)) => {
            let mut cfg = StudyConfig::load(file).map_err(search_err)?;
            let dir = a
                .out
                .clone()
                .unwrap_or_else(|| Path::new("runs").join(&cfg.name));
            if is_nonempty_dir(&dir) {
                return Err(CliError::input(format!(
                    "run directory {} exists and is not empty: continue it with `unas search \
                     --resume {}`, or choose another with --out",
                    dir.display(),
                    dir.display()
                )));
            }
            resolve_for_this_machine(&mut cfg, file, &mut prebuilt)?;
            let study = unas_search::run_dir::create_study(a.store.as_deref(), &dir, cfg)
                .map_err(|e| in_file(file, e))?;
            let copy = dir.join("study.toml");
            std::fs::copy(file, &copy).map_err(|e| {
                CliError::failure(format!(
                    "{}: cannot copy the study file: {e}",
                    copy.display()
                ))
            })?;
            (dir, study, Some(file.clone()))
        }
        (None, None) => {
            return Err(CliError::input(
                "give --config FILE (a study file) or --resume RUN_DIR",
            ))
        }
    };
    if let Some(j) = a.jobs {
        if j == 0 {
            return Err(CliError::input("--jobs must be at least 1"));
        }
        study.set_jobs(j);
    }
    let cfg = study.config().clone();
    let cfg_name = config_file
        .as_deref()
        .map_or_else(|| dir.join("study.toml"), Path::to_path_buf);
    if a.workers == "external" {
        return super::worker::search_external(&mut study, &dir, &a.lease, a.quiet);
    }
    let latency = match prebuilt {
        Some(model) => model,
        None => cfg
            .latency
            .build_for(study.space(), &mut |l| eprintln!("latency: {l}"))
            .map_err(|e| in_file(&cfg_name, e))?,
    };
    let prepared = Quality::prepare(&cfg, study.space().stem.cross_attention_dim, a.quiet)?;
    let quality = prepared.get();
    let proxy = prepared.proxy();
    let ev = Evaluators {
        latency: latency.as_ref(),
        quality,
    };
    eprintln!(
        "study `{}` in {}: {} trials, {} ({}), budget {} ms {} on {}",
        cfg.name,
        dir.display(),
        cfg.trials,
        cfg.controller.name(),
        cfg.space,
        cfg.latency.budget_ms,
        if cfg.latency.per_image() {
            "per image"
        } else {
            "per step"
        },
        cfg.latency.model
    );
    let t0 = Instant::now();
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        progress::bar(
            cfg.trials,
            "{bar:30} {pos}/{len} trials  {msg}  [{elapsed_precise}, ETA {eta}]",
        )
    };
    // Without a terminal (or with --quiet) the bar is hidden: a line per finished trial.
    let lines = progress::logs_lines(a.quiet, &bar);
    if !cfg.references.is_empty() {
        bar.set_message("evaluating the reference archs");
        study
            .run_references(ev, &mut |t| {
                let name = unas_reports::reference_name(t);
                progress::say(&bar, format!("reference {name}: {}", describe_trial(t)));
            })
            .map_err(search_err)?;
    }
    let mut first = true;
    let summary = study
        .run(ev, &mut |p: &Progress<'_>| {
            if first {
                bar.set_position(p.finished.saturating_sub(p.finished_this_run) as u64);
                bar.reset_eta();
                first = false;
            }
            bar.set_position(p.finished as u64);
            let best = p.best.map_or("none feasible yet".to_string(), |(n, q, l)| {
                format!("best {q:.4} (#{n}, {l:.2} ms)")
            });
            let msg = format!("{best}, HV {:.4}", p.hypervolume);
            if let (true, Some(r)) = (lines, p.rung) {
                let what = match (r.score, &r.error) {
                    (Some(q), _) => format!("quality {q:.4}"),
                    (None, e) => format!("failed: {}", e.as_deref().unwrap_or("no score")),
                };
                eprintln!(
                    "trial {} rung {}: {what} | {:.0} s",
                    r.number, r.rung, p.elapsed_s
                );
            } else if lines {
                let left = p.total.saturating_sub(p.finished) as f64;
                let per_trial = p.elapsed_s / p.finished_this_run.max(1) as f64;
                eprintln!(
                    "trial {} ({}/{}): {} | {msg} | {:.0} s, ETA {:.0} s",
                    p.trial.number,
                    p.finished,
                    p.total,
                    describe_trial(p.trial),
                    p.elapsed_s,
                    per_trial * left
                );
            }
            bar.set_message(msg);
        })
        .map_err(search_err)?;
    bar.finish_and_clear();
    eprintln!(
        "search finished in {:.1} s: {} trials this run ({} quality evaluations{}, {} duplicates \
         reused, {} infeasible, {} failed, {} re-run after an interruption)",
        t0.elapsed().as_secs_f64(),
        summary.finished,
        summary.quality_evaluations,
        match summary.rung_evaluations {
            0 => String::new(),
            n => format!(" and {n} at higher rungs"),
        },
        summary.reused,
        summary.infeasible,
        summary.failed,
        summary.requeued
    );
    let mut input = ReportInput::from_study(&mut study).map_err(search_err)?;
    if let Some(p) = proxy {
        input.samples = write_sample_grids(p, &input, &dir)?;
    }
    let files = unas_reports::write_report(&input, &dir).map_err(report_err)?;
    println!(
        "report: {} and {}",
        files.html.display(),
        files.markdown.display()
    );
    match unas_reports::export(&input, &Pick::Knee, &dir) {
        Ok(x) => println!(
            "exported the knee (trial {}): {} and {}",
            x.trial,
            x.toml.display(),
            x.config_json.display()
        ),
        Err(ReportError::Pick { message, .. }) => {
            println!("nothing exported: {message}")
        }
        Err(e) => return Err(report_err(e)),
    }
    Ok(())
}

/// Prompts per sample grid.
const GRID_PROMPTS: usize = 8;

/// Samples the front's and the references' architectures (supernet objectives only; the same
/// prompts and noise for all) into `dir/samples/`; an architecture that cannot be sampled is
/// left out with a warning.
fn write_sample_grids(
    p: &ProxyQuality,
    input: &ReportInput,
    dir: &Path,
) -> Result<Option<SampleGrids>, CliError> {
    let results = input.results();
    let archs = results
        .front
        .iter()
        .map(|t| (format!("#{}", t.number), Some(t.number), t))
        .chain(input.references.iter().map(|r| {
            (
                format!("reference {}", unas_reports::reference_name(r)),
                None,
                r,
            )
        }));
    let cfg = p.proxy().config();
    let mut grids = SampleGrids {
        prompts: Vec::new(),
        how: format!(
            "{GRID_PROMPTS} prompts, the same for every architecture, each sampled with the \
             quality proxy's fixed noise ({} DDIM steps, guidance {}) from the weights the \
             architecture inherits from its supernet (zero-shot, as the objective scored it), \
             decoded by the data's VAE.",
            cfg.sampling_steps, cfg.guidance
        ),
        grids: Vec::new(),
    };
    let t0 = Instant::now();
    for (label, number, t) in archs {
        let Some(made) = p.samples(&t.arch, GRID_PROMPTS) else {
            return Ok(None);
        };
        let s = match made {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warning: no samples of {label}: {e}");
                continue;
            }
        };
        let zoom = (96 / s.size.max(1)).max(1);
        let png = unas_reports::training::image_grid_png(&s.images, s.size, GRID_PROMPTS, zoom)
            .map_err(CliError::failure)?;
        grids.prompts = s.prompts;
        let file = match number {
            Some(n) => format!("trial-{n}.png"),
            None => format!("reference-{}.png", t.hash),
        };
        grids.grids.push(SampleGrid {
            label,
            number,
            file,
            png,
        });
    }
    if grids.grids.is_empty() {
        return Ok(None);
    }
    let out = grids.write(dir).map_err(report_err)?;
    eprintln!(
        "samples: {} grids of {GRID_PROMPTS} prompts in {} ({:.1} s)",
        grids.grids.len(),
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(Some(grids))
}

/// Draws the sample grids on this machine when the study's objective uses supernets: the
/// proxy's data and the supernets are prepared here (from the cache when present). Best
/// effort: a failure is a warning and the report goes without (`None`).
pub fn sample_grids_here(
    input: &ReportInput,
    cross_attention_dim: usize,
    dir: &Path,
    quiet: bool,
) -> Option<SampleGrids> {
    if !input.config.quality.objective.uses_supernets() {
        return None;
    }
    let drawn = prepare_quality(&input.config, cross_attention_dim, quiet)
        .and_then(|p| write_sample_grids(&p, input, dir));
    match drawn {
        Ok(g) => g,
        Err(e) => {
            eprintln!("warning: no sample grids: {}", e.message);
            None
        }
    }
}

/// `unas report RUN_DIR`.
pub fn report(a: ReportArgs) -> CmdResult {
    let mut input =
        super::worker::report_input(a.store.as_deref(), &a.run_dir).map_err(search_err)?;
    if a.samples {
        // Every arch of a study shares the space's text side.
        let dim = input
            .trials
            .first()
            .map(|t| t.arch.stem.cross_attention_dim);
        if let Some(g) = dim.and_then(|d| sample_grids_here(&input, d, &a.run_dir, false)) {
            input.samples = Some(g);
        }
    }
    let out = a.out.unwrap_or(a.run_dir);
    let files = unas_reports::write_report(&input, &out).map_err(report_err)?;
    let r = input.results();
    println!(
        "study `{}`: {} trials, {}",
        input.config.name,
        input.trials.len(),
        if r.feasible {
            format!(
                "{} on the Pareto front, hypervolume {:.4}",
                r.front.len(),
                r.hypervolume
            )
        } else {
            "no feasible trial (the report lists the least-violating ones)".into()
        }
    );
    println!("wrote {}", files.html.display());
    println!("wrote {}", files.markdown.display());
    for p in &files.plots {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// `unas export RUN_DIR --pick …`.
pub fn export(a: ExportArgs) -> CmdResult {
    let which: Pick = a.pick.parse().map_err(report_err)?;
    let input = super::worker::report_input(a.store.as_deref(), &a.run_dir).map_err(search_err)?;
    let out = a.out.unwrap_or(a.run_dir);
    // Checked before anything is written.
    let supernets = match (a.weights, a.supernet, &input.config.quality.supernets) {
        (false, _, _) => None,
        (true, Some(dir), _) => Some(dir),
        (true, None, Some(dir)) => Some(dir.clone()),
        (true, None, None) => {
            return Err(CliError::input(format!(
                "--weights: study `{}` names no supernets (`[quality] supernets`); pass \
                 --supernet DIR",
                input.config.name
            )))
        }
    };
    if let Some(dir) = &supernets {
        if !dir.is_dir() {
            return Err(CliError::input(format!(
                "--weights: supernet folder {} not found",
                dir.display()
            )));
        }
    }
    // The data's VAE and text encoder go into the pipeline folder: prepared (from the cache)
    // before anything is written.
    let prepared = match &supernets {
        None => None,
        Some(_) => {
            let t = unas_reports::pick(&input, &which).map_err(report_err)?;
            let dim = t.arch.stem.cross_attention_dim;
            let proxy = super::quality::prepare(&input.config.quality, dim)?;
            let text = super::pipeline_folder::text_side(&proxy)
                .map_err(|e| eprintln!("warning: {e}: the folder gets the U-Net only"))
                .ok();
            Some((proxy, text))
        }
    };
    let x = unas_reports::export(&input, &which, &out).map_err(report_err)?;
    println!("trial {} exported", x.trial);
    println!("wrote {}", x.toml.display());
    println!("wrote {}", x.config_json.display());
    if let (Some(root), Some((proxy, text))) = (supernets, prepared) {
        let arch = unas_space::load_arch(&x.toml.to_string_lossy()).map_err(CliError::failure)?;
        let w = super::export_weights::export_weights(&arch, &proxy, text.as_ref(), &root, &out)?;
        println!(
            "wrote {} (weights inherited from {})",
            w.dir.display(),
            w.supernet.display()
        );
        if text.is_some() {
            println!(
                "wrote the pipeline folder {} (unas generate --model {0})",
                out.display()
            );
        }
    }
    Ok(())
}

mod benchmark;
mod evaluate;

use benchmark::{benchmark, BenchmarkArgs};
use evaluate::{evaluate, EvaluateArgs};
