//! `unas quality calibrate`: the ground truth (architectures trained from scratch, resumable)
//! and the proxies scored against it.

#[allow(unused_imports)]
use super::*;

#[derive(Args)]
pub(super) struct CalibrateArgs {
    /// Search space: preset or TOML file.
    #[arg(long, default_value = "tiny")]
    pub(super) space: String,
    /// Architectures, stratified over the space's cost range (the cheapest and the most
    /// expensive included); fixed once written to OUT/archs/.
    #[arg(short = 'n', long, default_value_t = 12)]
    pub(super) count: usize,
    /// Ground-truth seeds per architecture (0..SEEDS; each seed's data, timestep and noise
    /// draws are shared by all architectures).
    #[arg(long, default_value_t = 4)]
    pub(super) seeds: u64,
    /// Ground-truth budget: training steps from scratch (the proxy's recipe, batch and data).
    #[arg(long, default_value_t = 400)]
    pub(super) steps: usize,
    /// How each ground-truth training is initialised: `standalone` (the architecture's own
    /// seeded initialisation) or `covering` (as the sub-network of its topology's covering
    /// network initialised from the seed, so the architectures of one seed share their
    /// initial tensors as they share data, timesteps and noise: common random numbers in the
    /// initialisation too). Recorded in the folder's protocol.
    #[arg(long, value_enum, default_value_t = GtInit::Standalone)]
    pub(super) init: GtInit,
    /// Learning-curve points: the validation loss of the current iterate after these steps
    /// (also kept in ground_truth.csv, as `iterate` rows).
    #[arg(long, value_delimiter = ',', default_value = "60,150,250")]
    pub(super) budgets: Vec<usize>,
    /// Cost used to stratify the architectures: a latency lookup table (lut:FILE) at the
    /// space's constraint setting, or `macs`.
    #[arg(long, default_value = "macs")]
    pub(super) cost: String,
    /// Pick only architectures of this layout (`diffusers` or `flexible`), e.g. the one the
    /// supernets cover.
    #[arg(long)]
    pub(super) layout: Option<String>,
    /// Stratify within each stage count on its own, sharing the N architectures evenly over
    /// the stage counts (so every stage count the search proposes is calibrated).
    #[arg(long)]
    pub(super) per_stage_count: bool,
    /// Trained supernets to score as proxies: a folder of `unas supernet train` outputs (one
    /// sub-folder per topology and seed). Proxies `supernet-val-loss` (zero-shot validation
    /// loss with inherited weights) and `supernet-val-loss-rel` (the same minus the supernet's
    /// level: the mean over a fixed reference panel of its sub-networks, which removes the
    /// offset between supernet seeds).
    #[arg(long)]
    pub(super) supernets: Option<PathBuf>,
    /// Also score each architecture of each --supernets supernet after K steps of fine-tuning
    /// from its inherited weights (same batches, timesteps and noise for every candidate):
    /// proxy `supernet-finetune@K`.
    #[arg(long, value_name = "K")]
    pub(super) finetune: Option<usize>,
    /// Also score each architecture of each --supernets supernet by its paired distance to
    /// the supernet's largest network: both sample the proxy's fixed prompts from the same
    /// noise (deterministic DDIM; the largest with 50 steps, the candidate with K), relative
    /// squared distance of the final latents; proxy `supernet-paired@K`. Comma-separated for
    /// several step counts.
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub(super) paired_steps: Vec<usize>,
    /// Also score each architecture of each --supernets supernet by the Fréchet distance and
    /// KID of its samples (the proxy's fixed prompts and noise, K DDIM steps of the
    /// supernet's sampler, the inherited weights) against the real reference in the proxy's
    /// feature space: proxies `supernet-fd@K` and `supernet-kid@K`. Comma-separated.
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub(super) fd_steps: Vec<usize>,
    /// Trainings run in parallel.
    #[arg(long, default_value_t = 1)]
    pub(super) jobs: usize,
    /// Stop after this many new ground-truth trainings (the rest on the next run).
    #[arg(long)]
    pub(super) max_runs: Option<usize>,
    /// Train the ground truth of these architectures only (comma-separated: their index in
    /// OUT/archs/, as in `03-…`, or a prefix of their id of ≥ 4 characters); the others on a
    /// later run.
    #[arg(long, value_delimiter = ',')]
    pub(super) archs: Vec<String>,
    /// Only recompute the summary from the tables in OUT.
    #[arg(long)]
    pub(super) summary_only: bool,
    /// The proxy's data and training settings (batch, recipe) come from `--config`.
    #[command(flatten)]
    pub(super) proxy: DataArgs,
    /// Output folder: archs/, ground_truth.csv, proxy_scores.csv, summary.csv, README.md.
    #[arg(long, default_value = "docs/calibration")]
    pub(super) out: PathBuf,
}

/// How a ground-truth training is initialised (`--init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum GtInit {
    /// The architecture's own seeded initialisation.
    Standalone,
    /// The sub-network of the topology's covering network initialised from the seed.
    Covering,
}

/// The calibration architectures: those in OUT/archs/ (sorted by file name), or `n` picked
/// from `space` stratified over `cost` and written there.
pub(super) fn calibration_archs(
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
    let layout = match a.layout.as_deref() {
        None => None,
        Some(l) => Some(
            serde_json::from_value::<unas_space::Layout>(serde_json::Value::from(l)).map_err(
                |_| CliError::input(format!("--layout `{l}`: expected diffusers or flexible")),
            )?,
        ),
    };
    let keep = |arch: &UNetArch| layout.is_none_or(|l| arch.layout == l);
    let group = |arch: &UNetArch| match a.per_stage_count {
        true => arch.down.len(),
        false => 0,
    };
    let archs = unas_evaluator::quality::calibration::pick_archs_by(
        space,
        a.count,
        40 * a.count,
        0,
        &*cost,
        &keep,
        &group,
    )
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

pub(super) fn calibrate(a: CalibrateArgs) -> CmdResult {
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
    if a.paired_steps.contains(&0) {
        return Err(CliError::input("--paired-steps: at least 1 step"));
    }
    if a.fd_steps.contains(&0) {
        return Err(CliError::input("--fd-steps: at least 1 step"));
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
        let settings_to_write = ground_truth_settings(&a.out, &cfg, a.steps, a.init)?;
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
        let covering = (a.init == GtInit::Covering).then_some(&space);
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
                .train_curve(
                    arch,
                    covering,
                    seed,
                    a.steps,
                    &a.budgets,
                    &val,
                    &mut |k, l| {
                        points.push(row(k, "iterate", l.overall));
                    },
                )
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
                // The largest network's samples, made once per supernet when first needed.
                let mut paired_reference = None;
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
                    for &k in &a.paired_steps {
                        let name = unas_evaluator::quality::paired::name(k);
                        if missing(&name) {
                            let reference = match &paired_reference {
                                Some(r) => r,
                                None => paired_reference.insert(
                                    unas_evaluator::quality::paired::PairedReference::new(
                                        &proxy,
                                        &info,
                                        &unet,
                                        unas_evaluator::quality::paired::REFERENCE_STEPS,
                                    )
                                    .map_err(CliError::failure)?,
                                ),
                            };
                            let d = reference
                                .distance(&proxy, &info, &unet, arch, k)
                                .map_err(CliError::failure)?;
                            eprintln!(
                                "{id} supernet seed {seed}: {} {d:.5}",
                                reference.label(k, &format!("{} seed {seed}", info.topology))
                            );
                            new_rows.push(ProxyRow {
                                arch: id.clone(),
                                proxy: name,
                                supernet_seed: seed,
                                score: d,
                            });
                        }
                    }
                    // The sub-network, extracted once for all of `--fd-steps`.
                    let mut sub = None;
                    for &k in &a.fd_steps {
                        let (fd_name, kid_name) =
                            (format!("supernet-fd@{k}"), format!("supernet-kid@{k}"));
                        if missing(&fd_name) || missing(&kid_name) {
                            let sub = match &sub {
                                Some(u) => u,
                                None => sub.insert(
                                    unas_runtime::SubNet::new(arch, &info.arch)
                                        .map_err(CliError::failure)?
                                        .extract(&unet),
                                ),
                            };
                            let images = proxy
                                .sample_with(
                                    sub,
                                    k,
                                    proxy.prompt_items().len(),
                                    &info.settings.recipe.scheduler_config(),
                                )
                                .map_err(CliError::failure)?;
                            let (fd, kid, _) = proxy.score(&images).map_err(CliError::failure)?;
                            eprintln!(
                                "{id} supernet seed {seed}: {} samples at {k} steps: FD {fd:.3}, \
                                 KID {:.5} ± {:.5}",
                                images.len(),
                                kid.mean,
                                kid.std
                            );
                            for (name, score) in [(fd_name, fd), (kid_name, kid.mean)] {
                                if !missing(&name) {
                                    continue;
                                }
                                new_rows.push(ProxyRow {
                                    arch: id.clone(),
                                    proxy: name,
                                    supernet_seed: seed,
                                    score,
                                });
                            }
                        }
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

/// The positions in `archs` named by `--archs` (indices or id prefixes); `None` = all.
pub(super) fn selected_archs(
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
pub(super) fn ground_truth_settings(
    out: &std::path::Path,
    cfg: &ProxyConfig,
    steps: usize,
    init: GtInit,
) -> Result<Option<(PathBuf, String)>, CliError> {
    let file = out.join(GT_SETTINGS);
    let mut now = serde_json::json!({
        "steps": steps,
        "batch": cfg.batch,
        "recipe": cfg.recipe,
    });
    // The standalone initialisation is the original protocol: no key, so folders written
    // before `--init` existed keep their protocol.
    if init == GtInit::Covering {
        now["init"] = "covering".into();
    }
    match read_gt_settings(out)? {
        Some((file, was)) => {
            if was != now {
                return Err(CliError::input(format!(
                    "{}: this folder's ground truth was trained with {was}; --config, --steps and \
                     --init give {now}: use another --out",
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
pub(super) fn read_gt_settings(
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
pub(super) const GT_SETTINGS: &str = "ground_truth_settings.json";
