//! `unas supernet …`: weight-sharing supernets of a search space — list a space's topologies,
//! train one supernet per topology with the sandwich rule (resumable), and score candidates
//! with weights inherited from a trained supernet (deterministic validation loss).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand};
use unas_evaluator::quality::proxy::{default_cache_root, ProxyConfig};
use unas_evaluator::quality::supernet::{
    settings_hash, StepInfo, SupernetRule, SupernetSettings, TrainData, TrainedSupernet,
};
use unas_evaluator::quality::supernet_scorer::SupernetScorer;
use unas_evaluator::quality::supernet_store::{self, SupernetInfo};
use unas_runtime::device::Device;
use unas_runtime::{RoleWeights, UNet2DConditionModel};
use unas_space::{load_arch, SearchSpace, Topology, UNetArch};

use super::progress::{say, step_logger, steps_bar};
use super::quality::{prepare, DataArgs};
use super::{CliError, CmdResult};

/// `unas supernet …`.
#[derive(Subcommand)]
pub enum SupernetCommand {
    /// List the topologies of a space (one supernet each) with their covering architectures.
    List(ListArgs),
    /// Train the supernet of one topology (or of all) with the sandwich rule: every step the
    /// largest, the smallest and random sub-networks on one minibatch, inplace distillation,
    /// the seed's recipe, warm-up + cosine decay, EMA. Checkpoints every N steps; run the same
    /// command again to resume after an interruption.
    Train(Box<TrainArgs>),
    /// Validation loss of an architecture with weights inherited from its trained supernet.
    Score(ScoreArgs),
}

#[derive(Args)]
pub struct ListArgs {
    /// Search space: preset or TOML file.
    #[arg(long, default_value = "tiny")]
    space: String,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Search space: preset or TOML file.
    #[arg(long, default_value = "tiny")]
    space: String,
    /// Topology to train (a name from `unas supernet list`), or `all`.
    #[arg(long, default_value = "all")]
    topology: String,
    #[command(flatten)]
    data: DataArgs,
    /// Optimiser steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Minibatch.
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Random sub-networks per step besides the largest and the smallest.
    #[arg(long)]
    random_subnets: Option<usize>,
    /// How the random sub-networks are drawn: `uniform` (among the topology's candidates) or
    /// `towards-largest` (each block's counts with probability proportional to their rank
    /// among the allowed counts, so the deepest layers are trained in more sub-networks).
    #[arg(long, value_parser = ["uniform", "towards-largest"])]
    sampling: Option<String>,
    /// Which sub-networks a step trains: `sandwich` (the largest, the smallest and
    /// `--random-subnets` drawn ones; BigNAS) or `uniform` (only `--random-subnets` drawn ones,
    /// single-path one-shot; needs `--distill 0`, as no largest is run to distil from).
    #[arg(long, value_parser = ["sandwich", "uniform"])]
    rule: Option<String>,
    /// Weight of inplace distillation onto the largest sub-network (0 = off).
    #[arg(long)]
    distill: Option<f64>,
    /// EMA over this last fraction of the steps (0 = none).
    #[arg(long)]
    ema_fraction: Option<f64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Seed of the initialisation and of every step's draws.
    #[arg(long)]
    seed: Option<u64>,
    /// Start from a pretrained diffusers U-Net folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`, e.g. SD1.5's `unet/`): weights mapped by role
    /// where shapes match. Or from a trained supernet folder (`supernet.json`, trained on the
    /// same data): each topology's covering architecture starts as the sub-network it is of
    /// that supernet (the weights a candidate would inherit) — the split step of few-shot NAS.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Output folder (default: the cache's `supernets/TOPOLOGY-HASH`). With `--topology all`,
    /// one sub-folder per topology.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// Architecture: preset or unas TOML file.
    #[arg(long)]
    arch: String,
    /// A trained supernet folder (written by `unas supernet train`), or a folder of them: the
    /// supernets of the arch's topology there are an ensemble (the mean of their scores), as
    /// in a search.
    #[arg(long)]
    supernet: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Score after K fine-tuning steps from the inherited weights (the batches, timesteps and
    /// noise drawn from the supernet's seed: the same for every architecture), as the search
    /// objective `supernet-finetune` does; default: zero-shot.
    #[arg(long, value_name = "K")]
    finetune: Option<usize>,
    /// Also give the paired distance to the largest network of the supernet when the
    /// architecture samples with K DDIM steps: the proxy's fixed prompts from the same noise,
    /// the largest sampling with 50 steps; relative squared distance of the final latents
    /// (0 for the largest itself at 50 steps). Comma-separated for several step counts.
    #[arg(long, value_name = "K", value_delimiter = ',')]
    paired_steps: Vec<usize>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `unas supernet …`.
pub fn run(c: SupernetCommand) -> CmdResult {
    match c {
        SupernetCommand::List(a) => list(a),
        SupernetCommand::Train(a) => train(*a),
        SupernetCommand::Score(a) => score(a),
    }
}

fn list(a: ListArgs) -> CmdResult {
    let space = SearchSpace::load(&a.space)?;
    println!("{:<32} {:>12}  covering architecture", "topology", "params");
    for t in space.topologies() {
        let arch = space.supernet_arch(&t);
        let plan = arch.plan().map_err(CliError::failure)?;
        let params = plan
            .cost(&unas_space::CostQuery {
                height: 16,
                width: 16,
                batch: 1,
                text_len: 1,
            })
            .map_err(CliError::failure)?
            .params;
        let depth: Vec<String> = arch
            .down
            .iter()
            .map(|d| format!("{}R{}A", d.resnets, d.attentions))
            .collect();
        println!(
            "{:<32} {:>12}  down {} | mid {}R{}A",
            t.to_string(),
            params,
            depth.join(" "),
            arch.mid.resnets,
            arch.mid.attentions
        );
    }
    Ok(())
}

fn settings(a: &TrainArgs) -> SupernetSettings {
    let mut s = SupernetSettings::default();
    if let Some(v) = a.steps {
        s.steps = v;
    }
    if let Some(v) = a.batch {
        s.batch = v;
    }
    if let Some(v) = a.lr {
        s.lr = v;
    }
    if let Some(v) = a.random_subnets {
        s.random_subnets = v;
    }
    if let Some(v) = &a.sampling {
        s.sampling = match v.as_str() {
            "towards-largest" => unas_space::SubnetSampling::TowardsLargest,
            _ => unas_space::SubnetSampling::Uniform,
        };
    }
    if let Some(v) = &a.rule {
        s.rule = match v.as_str() {
            "uniform" => SupernetRule::Uniform,
            _ => SupernetRule::Sandwich,
        };
    }
    if let Some(v) = a.distill {
        s.distill_weight = v;
    }
    if let Some(v) = a.ema_fraction {
        s.ema_fraction = v;
    }
    if let Some(v) = a.checkpoint_every {
        s.checkpoint_every = v;
    }
    if let Some(v) = a.seed {
        s.seed = v;
    }
    s
}

/// Where a supernet's training starts from (`--from`).
enum Start {
    /// A diffusers U-Net: role-addressed weights and a label.
    Pretrained(RoleWeights, String),
    /// A trained supernet (its folder).
    Supernet(
        Box<(
            SupernetInfo,
            UNet2DConditionModel<unas_runtime::device::Cpu>,
        )>,
    ),
}

impl Start {
    /// Reads `--from`: a supernet folder when it holds `supernet.json`, else a diffusers U-Net.
    fn read(dir: &Path) -> Result<Self, CliError> {
        if dir.join("supernet.json").exists() {
            let (info, unet) = supernet_store::load(dir).map_err(CliError::input)?;
            return Ok(Self::Supernet(Box::new((info, unet))));
        }
        let (_, w, label) = read_pretrained(dir)?;
        Ok(Self::Pretrained(w, label))
    }

    /// The start's weights for topology `t` of `space`, and its label (part of the settings
    /// hash: a supernet is named by its settings hash, seed and weights' SHA-256, not by where
    /// it lies). From a supernet, the covering architecture of `t` must be one of its
    /// sub-networks, and the data must be the same.
    fn weights(
        &self,
        space: &SearchSpace,
        t: &Topology,
        data: &str,
        from: &Path,
    ) -> Result<(RoleWeights, String), CliError> {
        match self {
            Self::Pretrained(w, label) => Ok((w.clone(), label.clone())),
            Self::Supernet(b) => {
                let (info, unet) = b.as_ref();
                let at = |m: String| {
                    CliError::input(format!(
                        "--from {}: {m}",
                        from.join("supernet.json").display()
                    ))
                };
                if info.data != data {
                    return Err(at(format!("trained on {}, this data is {data}", info.data)));
                }
                let cover = space.supernet_arch(t);
                let sub = unas_runtime::SubNet::new(&cover, &info.arch).map_err(|e| {
                    at(format!(
                        "the covering architecture of {t} is not one of its sub-networks: {e}"
                    ))
                })?;
                let w = RoleWeights::from_unet(&cover, &sub.extract(unet))
                    .map_err(CliError::failure)?;
                let sha = info.weights_sha256.as_deref().unwrap_or("unrecorded");
                let label = format!(
                    "supernet {} {} seed {} (weights sha256 {})",
                    info.topology,
                    info.settings_hash,
                    info.settings.seed,
                    &sha[..sha.len().min(16)]
                );
                Ok((w, label))
            }
        }
    }
}

/// Reads a pretrained diffusers U-Net folder: its architecture, role-addressed weights and
/// label.
pub(super) fn read_pretrained(dir: &Path) -> Result<(UNetArch, RoleWeights, String), CliError> {
    use unas_runtime::pipeline::model_dir::find_weights;
    use unas_runtime::pipeline::stable_diffusion::read_unet_arch;
    let config = dir.join("config.json");
    let arch = read_unet_arch(&config).map_err(CliError::input)?;
    let file = find_weights(dir, "diffusion_pytorch_model").map_err(CliError::input)?;
    let device = Default::default();
    let unet = UNet2DConditionModel::<unas_runtime::device::Cpu>::load(&arch, &file, &device)
        .map_err(CliError::input)?;
    let weights = RoleWeights::from_unet(&arch, &unet).map_err(CliError::failure)?;
    let label = format!("{} ({})", dir.display(), arch.hash_id());
    Ok((arch, weights, label))
}

fn train(a: TrainArgs) -> CmdResult {
    let space = SearchSpace::load(&a.space)?;
    let device: Device = a.device.parse().map_err(CliError::input)?;
    device.check().map_err(CliError::input)?;
    let all = space.topologies();
    let topologies: Vec<Topology> = if a.topology == "all" {
        all
    } else {
        let t = all
            .into_iter()
            .find(|t| t.to_string() == a.topology)
            .ok_or_else(|| {
                CliError::input(format!(
                    "--topology: `{}` is not a topology of space `{}` (see `unas supernet list \
                     --space {}`)",
                    a.topology, a.space, a.space
                ))
            })?;
        vec![t]
    };
    let s = settings(&a);
    s.check().map_err(CliError::input)?;
    let start = a.from.as_deref().map(Start::read).transpose()?;
    let cfg = a.data.resolve()?;
    let proxy = prepare(&cfg, space.stem.cross_attention_dim)?;
    for t in &topologies {
        let from = match (&start, &a.from) {
            (Some(st), Some(dir)) => Some(st.weights(&space, t, &proxy.describe_data(), dir)?),
            _ => None,
        };
        let hash = settings_hash(&space, t, &s, from.as_ref().map(|f| f.1.as_str()));
        let dir = match (&a.out, topologies.len()) {
            (Some(o), 1) => o.clone(),
            (Some(o), _) => o.join(format!("{t}-{hash}")),
            (None, _) => proxy_cache_root(&cfg)
                .join("supernets")
                .join(format!("{t}-{hash}")),
        };
        if supernet_store::is_complete(&dir, &hash) {
            println!("{t}: already trained ({})", dir.display());
            continue;
        }
        let bar = steps_bar(s.steps, t.to_string());
        let t0 = Instant::now();
        let mut on_step = step_logger(&bar, format!("{t}: "));
        let data = TrainData {
            cache: proxy.cache(),
            uncond: proxy.uncond(),
            train_items: proxy.train_items(),
        };
        let from_ref = from.as_ref().map(|(w, l)| (w, l.as_str()));
        let trained = train_on(device, &space, t, &data, &s, from_ref, &dir, &mut on_step)?;
        bar.finish_and_clear();
        let info = SupernetInfo::new(
            &space,
            t,
            &trained.arch,
            &s,
            &hash,
            from.as_ref().map(|f| f.1.clone()),
            proxy.describe_data(),
            &trained.losses,
            std::env::args().collect::<Vec<_>>().join(" "),
        );
        supernet_store::save(&dir, &info, &trained.unet).map_err(CliError::failure)?;
        say(
            &bar,
            format!(
                "{t}: {} steps in {:.0} s, final loss {:.4} -> {}",
                trained.steps_run,
                t0.elapsed().as_secs_f64(),
                info.final_loss,
                dir.display()
            ),
        );
    }
    Ok(())
}

fn proxy_cache_root(cfg: &ProxyConfig) -> PathBuf {
    cfg.cache_dir.clone().unwrap_or_else(default_cache_root)
}

/// Trains on `device` (burn's autodiff over the CPU backend, or CUDA with the feature).
#[allow(clippy::too_many_arguments)]
fn train_on(
    device: Device,
    space: &SearchSpace,
    t: &Topology,
    data: &TrainData,
    s: &SupernetSettings,
    from: Option<(&RoleWeights, &str)>,
    dir: &Path,
    progress: &mut dyn FnMut(StepInfo),
) -> Result<TrainedSupernet<unas_runtime::device::Cpu>, CliError> {
    use unas_evaluator::quality::supernet::train_supernet;
    let err = |e: unas_evaluator::EvalError| CliError::failure(format!("training {t}: {e}"));
    match device {
        Device::Cpu => train_supernet::<burn::backend::Autodiff<unas_runtime::device::Cpu>>(
            space,
            t,
            data,
            s,
            from,
            dir,
            &Default::default(),
            None,
            progress,
        )
        .map_err(err),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => {
            let trained = train_supernet::<burn::backend::Autodiff<unas_runtime::device::Cuda>>(
                space,
                t,
                data,
                s,
                from,
                dir,
                &burn::backend::cuda::CudaDevice::new(i),
                None,
                progress,
            )
            .map_err(err)?;
            // Weights move to the host for saving and scoring.
            supernet_store::to_cpu(trained).map_err(err)
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
    }
}

fn score(a: ScoreArgs) -> CmdResult {
    let arch = load_arch(&a.arch)?;
    if a.finetune == Some(0) {
        return Err(CliError::input("--finetune: at least 1 step"));
    }
    if a.paired_steps.contains(&0) {
        return Err(CliError::input("--paired-steps: at least 1 step"));
    }
    let cfg = a.data.resolve()?;
    if let Some(k) = a.finetune {
        cfg.recipe
            .ema_window(k)
            .map_err(|m| CliError::input(format!("--finetune {k}: {m}")))?;
    }
    let proxy = prepare(&cfg, arch.stem.cross_attention_dim)?;
    let scorer = SupernetScorer::load(&a.supernet, &proxy, a.finetune).map_err(CliError::input)?;
    let scored = scorer.score(&proxy, &arch).map_err(CliError::input)?;
    let (loss, metric) = (scored.loss, scored.metric);
    let paired = a
        .paired_steps
        .iter()
        .map(|&k| {
            let (d, label) = scorer.paired(&proxy, &arch, k).map_err(CliError::failure)?;
            Ok((k, d, label))
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    if a.json {
        let mut out = serde_json::json!({
            "arch": arch.hash_id(),
            "finetune_steps": a.finetune.unwrap_or(0),
            "metric": metric,
            "val_loss": loss.overall,
            "bands": loss.bands,
        });
        if !paired.is_empty() {
            out["paired"] = paired
                .iter()
                .map(
                    |(k, d, label)| serde_json::json!({"steps": k, "distance": d, "metric": label}),
                )
                .collect();
        }
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
    } else {
        println!(
            "{}: validation loss {:.5} ({metric})",
            arch.hash_id(),
            loss.overall
        );
        let bands: Vec<String> = loss.bands.iter().map(|b| format!("{b:.4}")).collect();
        println!("  per timestep band (low noise first): {}", bands.join(" "));
        for (k, d, label) in &paired {
            println!("  paired distance at {k} steps {d:.5} ({label})");
        }
    }
    Ok(())
}
