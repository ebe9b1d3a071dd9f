//! `unas space …`: block tables, samples and statistics of architectures and search spaces.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use unas_space::rng::Rng;
use unas_space::{diffusers, load_arch, CostQuery, SearchSpace, UNetArch};

use super::{CliError, CmdResult};

/// `unas space` subcommands.
#[derive(Subcommand)]
pub enum SpaceCommand {
    /// Print an architecture's blocks (stage, resolution, type, channels, params, MACs) and totals.
    ///
    /// ARCH is a preset name (sd15, decidiffusion, tiny, tiny-nas) or a unas TOML file.
    Show(ShowArgs),
    /// Draw valid architectures uniformly from a search space, as unas TOML.
    Sample(SampleArgs),
    /// Size of a search space and the parameter / MAC range seen in a sample of it.
    Stats(StatsArgs),
    /// Write an architecture's diffusers `config.json` (UNet2DConditionModel when diffusers
    /// can build it, else the per-block FlexibleUNet2DConditionModel form).
    Export(ExportArgs),
}

/// Cost-query options shared by the commands that compute MACs.
#[derive(Args, Clone, Copy)]
pub struct QueryArgs {
    /// Latent side (64 = 512 px with SD's VAE).
    #[arg(long, default_value_t = 64)]
    pub latent: usize,
    /// Batch (2 = one image with classifier-free guidance).
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Text tokens attended to (77 for CLIP).
    #[arg(long, default_value_t = 77)]
    pub text_len: usize,
}

impl QueryArgs {
    fn query(&self) -> CostQuery {
        CostQuery {
            height: self.latent,
            width: self.latent,
            batch: self.batch,
            text_len: self.text_len,
        }
    }
}

/// Arguments of `unas space show`.
#[derive(Args)]
pub struct ShowArgs {
    /// Preset name or TOML file.
    pub arch: String,
    #[command(flatten)]
    pub query: QueryArgs,
    /// Print JSON (per-module rows, totals, hash, diffusers config) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `unas space sample`.
#[derive(Args)]
pub struct SampleArgs {
    /// Search space: preset name (default, tiny) or TOML file.
    #[arg(long)]
    pub space: String,
    /// How many architectures.
    #[arg(short = 'n', long, default_value_t = 1)]
    pub count: usize,
    /// Random seed (same seed, same architectures, on every platform).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write one `<hash>.toml` per architecture into this folder instead of printing them.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sample only architectures of this layout (it must be one of the space's layouts).
    #[arg(long, value_enum)]
    pub layout: Option<LayoutArg>,
}

/// A layout named on the command line.
#[derive(clap::ValueEnum, Clone, Copy)]
pub enum LayoutArg {
    /// diffusers' UNet2DConditionModel wiring (SD1.5).
    Diffusers,
    /// DeciDiffusion's FlexibleUNet2DConditionModel wiring.
    Flexible,
}

/// Arguments of `unas space stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// Search space: preset name (default, tiny) or TOML file.
    #[arg(long)]
    pub space: String,
    /// Architectures sampled for the parameter / MAC ranges.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub samples: usize,
    /// Random seed of the sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub query: QueryArgs,
}

/// Arguments of `unas space export`.
#[derive(Args)]
pub struct ExportArgs {
    /// Preset name or TOML file.
    pub arch: String,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// `sample_size` written into the config (latent side).
    #[arg(long, default_value_t = 64)]
    pub sample_size: usize,
}

/// Runs a `unas space` subcommand.
pub fn run(cmd: SpaceCommand) -> CmdResult {
    match cmd {
        SpaceCommand::Show(a) => show(a),
        SpaceCommand::Sample(a) => sample(a),
        SpaceCommand::Stats(a) => stats(a),
        SpaceCommand::Export(a) => export(a),
    }
}

fn show(a: ShowArgs) -> CmdResult {
    let arch = load_arch(&a.arch)?;
    let q = a.query.query();
    let plan = arch.plan().map_err(CliError::input)?;
    let cost = plan.cost(&q)?;
    if a.json {
        let rows: Vec<_> = cost
            .modules
            .iter()
            .map(|m| {
                json!({
                    "section": m.section.to_string(),
                    "key": m.key,
                    "type": m.kind.type_name(),
                    "channels": [m.kind.channels().0, m.kind.channels().1],
                    "resolution": [q.height / m.input_div.max(1), q.width / m.input_div.max(1)],
                    "runs": m.runs,
                    "params": m.params,
                    "macs": m.macs,
                })
            })
            .collect();
        let out = json!({
            "name": arch.name,
            "hash": arch.hash_id(),
            "params": cost.params,
            "macs": cost.macs,
            "query": {"latent": [q.height, q.width], "batch": q.batch, "text_len": q.text_len},
            "modules": rows,
            "diffusers_config": diffusers::export_config(&arch, q.height),
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("json"));
        return Ok(());
    }
    println!(
        "{} ({} layout, {} stages, id {})",
        if arch.name.is_empty() {
            &a.arch
        } else {
            &arch.name
        },
        match arch.layout {
            unas_space::Layout::Diffusers => "diffusers",
            unas_space::Layout::Flexible => "flexible",
        },
        arch.stages(),
        arch.hash_id()
    );
    println!(
        "cost query: {}x{} latent, batch {}, {} text tokens",
        q.height, q.width, q.batch, q.text_len
    );
    println!();
    println!(
        "{:<7} {:>7} {:<15} {:>11} {:>4} {:>14} {:>10}  key",
        "stage", "res", "type", "channels", "runs", "params", "GMACs"
    );
    for m in &cost.modules {
        let (cin, cout) = m.kind.channels();
        let res = format!("{}x{}", q.height / m.input_div, q.width / m.input_div);
        println!(
            "{:<7} {:>7} {:<15} {:>11} {:>4} {:>14} {:>10.3}  {}",
            m.section.to_string(),
            res,
            m.kind.type_name(),
            format!("{cin}->{cout}"),
            m.runs,
            group(m.params),
            m.macs as f64 / 1e9,
            if m.key.is_empty() {
                "conv_norm_out, conv_out"
            } else {
                &m.key
            },
        );
    }
    println!();
    println!("total parameters: {}", group(cost.params));
    println!(
        "total MACs:       {} ({:.2} GMACs)",
        group(cost.macs),
        cost.macs as f64 / 1e9
    );
    Ok(())
}

fn sample(a: SampleArgs) -> CmdResult {
    let mut space = SearchSpace::load(&a.space)?;
    if let Some(l) = a.layout {
        let layout = match l {
            LayoutArg::Diffusers => unas_space::Layout::Diffusers,
            LayoutArg::Flexible => unas_space::Layout::Flexible,
        };
        if !space.knobs.layouts.contains(&layout) {
            return Err(CliError::input(format!(
                "--layout: space `{}` has no architectures of that layout",
                space.name
            )));
        }
        space.knobs.layouts = vec![layout];
    }
    let mut rng = Rng::seed(a.seed);
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failure(format!("{}: cannot create: {e}", dir.display())))?;
    }
    let mut texts = Vec::with_capacity(a.count);
    for i in 0..a.count {
        let g = space.sample(&mut rng)?;
        let mut arch = space.decode(&g);
        arch.name = format!("{}-s{}-{}", space.name, a.seed, i);
        texts.push((arch.hash_id(), arch_toml(&arch)?));
    }
    match &a.out {
        Some(dir) => {
            for (hash, text) in &texts {
                let path = dir.join(format!("{hash}.toml"));
                write_atomic(&path, text)?;
            }
            eprintln!("wrote {} architectures to {}", texts.len(), dir.display());
        }
        None => {
            for (i, (hash, text)) in texts.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                println!("# ---- architecture {i} (id {hash}) ----");
                print!("{text}");
            }
        }
    }
    Ok(())
}

fn stats(a: StatsArgs) -> CmdResult {
    let space = SearchSpace::load(&a.space)?;
    let q = a.query.query();
    let mut rng = Rng::seed(a.seed);
    let mut params = (u64::MAX, 0u64);
    let mut macs = (u64::MAX, 0u64);
    let mut unique = std::collections::HashSet::new();
    let mut feasible = 0usize;
    for _ in 0..a.samples {
        let g = space
            .sample_structural(&mut rng)
            .ok_or_else(|| CliError::input(format!("space `{}` is empty", space.name)))?;
        let arch = space.decode(&g);
        let cost = arch.plan().map_err(CliError::failure)?.cost(&q)?;
        params = (params.0.min(cost.params), params.1.max(cost.params));
        macs = (macs.0.min(cost.macs), macs.1.max(cost.macs));
        unique.insert(arch.hash_id());
        feasible += usize::from(space.meets_constraints(&g));
    }
    println!("space:        {} ({})", space.name, space.description);
    println!(
        "size:         {} distinct valid architectures",
        space.size()
    );
    println!(
        "sample:       {} architectures (seed {}), {} distinct",
        a.samples,
        a.seed,
        unique.len()
    );
    println!(
        "cost query:   {}x{} latent, batch {}, {} text tokens",
        q.height, q.width, q.batch, q.text_len
    );
    println!(
        "params:       min {}  max {}",
        group(params.0),
        group(params.1)
    );
    println!(
        "MACs:         min {:.2} G  max {:.2} G",
        macs.0 as f64 / 1e9,
        macs.1 as f64 / 1e9
    );
    if space.constraints.max_params.is_some() || space.constraints.max_macs.is_some() {
        println!(
            "constraints:  {:.1}% of the sample meets max_params / max_macs",
            100.0 * feasible as f64 / a.samples.max(1) as f64
        );
    }
    Ok(())
}

fn export(a: ExportArgs) -> CmdResult {
    let arch = load_arch(&a.arch)?;
    let text = serde_json::to_string_pretty(&diffusers::export_config(&arch, a.sample_size))
        .expect("json")
        + "\n";
    match &a.out {
        Some(path) => write_atomic(path, &text),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// An architecture as unas TOML.
pub fn arch_toml(arch: &UNetArch) -> Result<String, CliError> {
    toml::to_string(arch).map_err(|e| CliError::failure(format!("cannot write TOML: {e}")))
}

/// Writes a file via a temporary sibling and a rename, so a failure leaves nothing half-written.
pub fn write_atomic(path: &std::path::Path, text: &str) -> CmdResult {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CliError::failure(format!("{}: cannot write: {e}", path.display()))
        })
}

/// 859520964 -> "859,520,964".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
