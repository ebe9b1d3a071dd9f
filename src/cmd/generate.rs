//! `unas generate`: text-to-image with a diffusers model folder (optionally with a unas U-Net
//! in place of its own), writing PNGs with the generation parameters as tEXt chunks.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use unas_runtime::device::Device;
use unas_runtime::pipeline::{
    generate_on, save_latents, save_png, GenerateParams, GenerateRequest,
};
use unas_runtime::scheduler::SchedulerKind;
use unas_runtime::RuntimeError;

use super::{CliError, CmdResult};

/// Arguments of `unas generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// diffusers model folder (model_index.json, scheduler/, text_encoder/, tokenizer/,
    /// unet/ or flexible_unet/, vae/).
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt.
    #[arg(long)]
    pub prompt: String,
    /// What the image should not show (classifier-free guidance's unconditional side).
    #[arg(long, default_value = "")]
    pub negative_prompt: String,
    /// Denoising steps.
    #[arg(long, default_value_t = 30)]
    pub steps: usize,
    /// Classifier-free guidance scale (≤ 1 disables guidance).
    #[arg(long, default_value_t = 7.5)]
    pub guidance: f64,
    /// Guidance rescale φ (Lin et al. 2023; 0.7 suits zero-terminal-SNR models).
    #[arg(long, default_value_t = 0.0)]
    pub guidance_rescale: f64,
    /// Image width in pixels (default: the U-Net's sample_size × the VAE factor, else 512).
    #[arg(long)]
    pub width: Option<usize>,
    /// Image height in pixels (default: as width).
    #[arg(long)]
    pub height: Option<usize>,
    /// Seed of the initial noise (same seed, same image on the same backend).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images to generate in one batch.
    #[arg(long, default_value_t = 1)]
    pub num_images: usize,
    /// Output PNG (with several images: NAME-0.png, NAME-1.png, …).
    #[arg(long, default_value = "out.png")]
    pub out: PathBuf,
    /// Folder with a U-Net config.json (unas export or diffusers) and its safetensors weights,
    /// used instead of the model's own U-Net.
    #[arg(long)]
    pub unet: Option<PathBuf>,
    /// Scheduler: ddim, euler or dpm (DPM-Solver++ 2M). Default: the model's scheduler when
    /// unas implements it, else dpm.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Initial latents [num_images, c, h, w] from a safetensors file (tensor `latents`,
    /// `noise` or the only one) instead of seeded noise.
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// Also write the final latents (before VAE decoding) to this safetensors file.
    #[arg(long)]
    pub save_latents: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Errors from reading or validating inputs are exit code 2, anything else 1.
fn classify(e: RuntimeError) -> CliError {
    match e {
        RuntimeError::Arch(_)
        | RuntimeError::Io { .. }
        | RuntimeError::Format { .. }
        | RuntimeError::MissingTensor { .. }
        | RuntimeError::ShapeMismatch { .. }
        | RuntimeError::UnsupportedDtype { .. }
        | RuntimeError::UnexpectedTensors { .. }
        | RuntimeError::BadFile { .. }
        | RuntimeError::Input(_)
        | RuntimeError::Device(_) => CliError::input(e),
        #[allow(unreachable_patterns)]
        _ => CliError::failure(e),
    }
}

/// Default image side: the U-Net config's `sample_size` × the VAE's downsampling factor.
fn default_size(args: &GenerateArgs) -> Option<usize> {
    let unet_dir = match &args.unet {
        Some(d) => d.clone(),
        None => ["unet", "flexible_unet"]
            .iter()
            .map(|n| args.model.join(n))
            .find(|d| d.join("config.json").is_file())?,
    };
    let read = |p: &Path| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    };
    // DeciDiffusion's `flexible_unet/config.json` nests it under `configurations`.
    let config = read(&unet_dir.join("config.json"))?;
    let sample = config
        .get("sample_size")
        .or_else(|| config.get("configurations")?.get("sample_size"))?
        .as_u64()? as usize;
    let vae = read(&args.model.join("vae/config.json"))?;
    let levels = vae.get("block_out_channels")?.as_array()?.len();
    Some(sample << levels.saturating_sub(1))
}

fn output_paths(out: &Path, n: usize) -> Vec<PathBuf> {
    if n == 1 {
        return vec![out.to_path_buf()];
    }
    let stem = out
        .file_stem()
        .map_or("out".into(), |s| s.to_string_lossy().to_string());
    let ext = out
        .extension()
        .map_or("png".into(), |s| s.to_string_lossy().to_string());
    (0..n)
        .map(|i| out.with_file_name(format!("{stem}-{i}.{ext}")))
        .collect()
}

/// Runs `unas generate`.
pub fn run(args: GenerateArgs) -> CmdResult {
    let device: Device = args.device.parse().map_err(CliError::input)?;
    let scheduler = args
        .scheduler
        .as_deref()
        .map(str::parse::<SchedulerKind>)
        .transpose()
        .map_err(CliError::input)?;
    if args.steps == 0 {
        return Err(CliError::input("--steps must be at least 1"));
    }
    if args.num_images == 0 {
        return Err(CliError::input("--num-images must be at least 1"));
    }
    let side = default_size(&args).unwrap_or(512);
    let width = args.width.unwrap_or(side);
    let height = args.height.unwrap_or(width);
    let params = GenerateParams {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        guidance_scale: args.guidance,
        guidance_rescale: args.guidance_rescale,
        width,
        height,
        steps: args.steps,
        num_images: args.num_images,
        seed: args.seed,
    };
    let request = GenerateRequest {
        model: args.model.clone(),
        unet: args.unet.clone(),
        scheduler,
        params,
        noise: args.noise.clone(),
    };

    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps, {elapsed} ({per_sec})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("loading");
    let mut started = false;
    let result = generate_on(device, &request, &mut |i, n| {
        if !started {
            bar.set_message("denoising");
            bar.set_length(n as u64);
            started = true;
        }
        bar.set_position(i as u64);
    });
    bar.finish_and_clear();
    let out = result.map_err(classify)?;

    if let Some(class) = &out.scheduler_fallback_from {
        eprintln!("note: unas does not implement {class}; using DPM-Solver++ (see --scheduler)");
    }
    let (tp, tn) = out.truncated_tokens;
    if tp > 0 {
        eprintln!("warning: the prompt is too long; its last {tp} token(s) were ignored");
    }
    if tn > 0 {
        eprintln!("warning: the negative prompt is too long; its last {tn} token(s) were ignored");
    }

    let text = |seed: u64| -> Vec<(String, String)> {
        let mut t = vec![
            ("prompt".to_string(), args.prompt.clone()),
            ("negative_prompt".to_string(), args.negative_prompt.clone()),
            ("steps".to_string(), args.steps.to_string()),
            ("guidance_scale".to_string(), args.guidance.to_string()),
            (
                "guidance_rescale".to_string(),
                args.guidance_rescale.to_string(),
            ),
            ("seed".to_string(), seed.to_string()),
            ("scheduler".to_string(), out.scheduler.to_string()),
            ("size".to_string(), format!("{width}x{height}")),
            ("model".to_string(), args.model.display().to_string()),
            (
                "Software".to_string(),
                format!("unas {}", env!("CARGO_PKG_VERSION")),
            ),
        ];
        if let Some(u) = &args.unet {
            t.push(("unet".to_string(), u.display().to_string()));
        }
        if let Some(n) = &args.noise {
            t.push(("noise".to_string(), n.display().to_string()));
        }
        t
    };
    let paths = output_paths(&args.out, out.images.len());
    for (i, (img, path)) in out.images.iter().zip(&paths).enumerate() {
        let mut t = text(args.seed);
        if out.images.len() > 1 {
            t.push(("batch_index".to_string(), i.to_string()));
        }
        save_png(path, img, &t).map_err(CliError::failure)?;
        println!("wrote {}", path.display());
    }
    if let Some(p) = &args.save_latents {
        save_latents(p, &out.latents, out.latent_shape).map_err(CliError::failure)?;
        println!("wrote {}", p.display());
    }
    let steps = out.step_s.len().max(1) as f64;
    let mean = out.step_s.iter().sum::<f64>() / steps;
    eprintln!(
        "{} step(s) with {} on {}: {:.3} s/step (load {:.2} s)",
        out.step_s.len(),
        out.scheduler,
        device,
        mean,
        out.load_s
    );
    Ok(())
}
