//! `unas quality recipes`: training recipes compared on the proxy, several seeds each.

#[allow(unused_imports)]
use super::*;

#[derive(Args)]
pub(super) struct RecipesArgs {
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

pub(super) fn recipes(a: RecipesArgs) -> CmdResult {
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
