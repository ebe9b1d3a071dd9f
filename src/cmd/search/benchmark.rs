//! `unas search benchmark`: the strategies against random search on one study, several seeds,
//! quality evaluations shared through a file cache.

#[allow(unused_imports)]
use super::*;

#[derive(Args)]
pub(super) struct BenchmarkArgs {
    /// Study file whose space, objectives, constraints and trial budget are used.
    #[arg(long)]
    pub(super) config: PathBuf,
    /// Seeds 0..N (at least 10 for a claim: the ratio's CI resamples seeds).
    #[arg(long, default_value_t = 10)]
    pub(super) seeds: u64,
    /// Trials per run (default: the study's `trials`).
    #[arg(long)]
    pub(super) trials: Option<usize>,
    /// Output folder (default runs/<study name>-benchmark/): the quality cache and
    /// strategy-benchmark.md.
    #[arg(long)]
    pub(super) out: Option<PathBuf>,
    /// Log lines instead of a progress spinner.
    #[arg(long)]
    pub(super) quiet: bool,
}

/// What the benchmark and `unas search evaluate` share: references dropped (a report
/// feature), the output folder (default runs/<study name>-benchmark/) made, the space loaded
/// and the latency model built, with the per-image parts and a relative budget resolved as
/// `unas search` does.
pub(super) fn setting_up(
    cfg: &mut StudyConfig,
    file: &Path,
    out: Option<PathBuf>,
) -> Result<
    (
        PathBuf,
        unas_space::SearchSpace,
        Box<dyn LatencyModel + Send + Sync>,
    ),
    CliError,
> {
    cfg.references.clear();
    let out = out.unwrap_or_else(|| Path::new("runs").join(format!("{}-benchmark", cfg.name)));
    std::fs::create_dir_all(&out)
        .map_err(|e| CliError::failure(format!("{}: {e}", out.display())))?;
    let space = cfg.load_space().map_err(search_err)?;
    let mut prebuilt = None;
    resolve_for_this_machine(cfg, file, &mut prebuilt)?;
    let latency = match prebuilt {
        Some(model) => model,
        None => cfg
            .latency
            .build_for(&space, &mut |l| eprintln!("latency: {l}"))
            .map_err(|e| in_file(file, e))?,
    };
    Ok((out, space, latency))
}

pub(super) fn benchmark(a: BenchmarkArgs) -> CmdResult {
    let mut cfg = StudyConfig::load(&a.config).map_err(search_err)?;
    if a.seeds == 0 {
        return Err(CliError::input("--seeds must be at least 1"));
    }
    if let Some(t) = a.trials {
        if t == 0 {
            return Err(CliError::input("--trials must be at least 1"));
        }
        cfg.trials = t;
    }
    let (out, space, latency) = setting_up(&mut cfg, &a.config, a.out.clone())?;
    let prepared = Quality::prepare(&cfg, space.stem.cross_attention_dim, a.quiet)?;
    let inner = prepared.get();
    let on_miss: Option<OnMiss> = (!a.quiet).then(|| {
        Box::new(|hash: &str, s: f64, n: usize| {
            eprintln!("evaluated {hash} in {s:.1} s ({n} new evaluations)")
        }) as OnMiss
    });
    let cache = FileCache::open(inner, cache_file(&out, &cfg), on_miss);
    let population = match cfg.controller {
        ControllerConfig::Aging { population, .. } | ControllerConfig::Nsga2 { population } => {
            population
        }
        ControllerConfig::Random => 20,
    };
    let sample = match cfg.controller {
        ControllerConfig::Aging { sample, .. } => sample.min(population),
        _ => 5.min(population),
    };
    let strategies = [
        ControllerConfig::Aging { population, sample },
        ControllerConfig::Nsga2 { population },
        ControllerConfig::Random,
    ];
    let seeds: Vec<u64> = (0..a.seeds).collect();
    eprintln!(
        "strategy benchmark: {} strategies x {} seeds x {} trials on `{}` (budget {} ms, {})",
        strategies.len(),
        seeds.len(),
        cfg.trials,
        cfg.name,
        cfg.latency.budget_ms,
        cfg.latency.model
    );
    let t0 = Instant::now();
    let report = strategy_benchmark(&cfg, &strategies, &seeds, latency.as_ref(), &cache)
        .map_err(search_err)?;
    let misses = cache.misses();
    let mut md = format!(
        "# Strategy benchmark: `{}`\n\n{} trials per run, seeds {:?}, latency {} (budget {} ms), \
         quality {}.\nHypervolume reference point: {} ms, quality {}. Quality evaluations \
         are cached by arch hash across runs ({} distinct archs scored, {} new in this \
         invocation; cache `{}`). Wall time {:.0} s.\n\n",
        cfg.name,
        report.trials,
        report.seeds,
        cfg.latency.model,
        cfg.latency.budget_ms,
        cache.describe(),
        report.reference[0],
        report.reference[1],
        report.quality_evaluations,
        misses,
        cache.file().display(),
        t0.elapsed().as_secs_f64()
    );
    md.push_str(&report.markdown());
    let file = out.join("strategy-benchmark.md");
    std::fs::write(&file, &md)
        .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
    for r in &report.strategies {
        println!(
            "{:<7} mean hypervolume {}  ({:.3}x random, 95 % CI [{:.3}, {:.3}])",
            r.name,
            unas_search::benchmark::significant(r.mean),
            r.ratio_to_random,
            r.ratio_ci[0],
            r.ratio_ci[1]
        );
    }
    println!("wrote {}", file.display());
    Ok(())
}
