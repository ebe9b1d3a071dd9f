//! `unas export … --weights`: the picked architecture's weights, inherited from a trained
//! supernet, in a diffusers pipeline folder (the U-Net as `unet/` for diffusers' layout,
//! `flexible_unet/` for DeciDiffusion's; the data's VAE, text encoder, tokenizer and scheduler
//! beside it: [`super::pipeline_folder`]) that `unas generate --model DIR` and diffusers read.

use std::path::{Path, PathBuf};

use unas_evaluator::quality::proxy::{Objective, Proxy};
use unas_evaluator::quality::supernet_store;
use unas_runtime::device::Cpu;
use unas_runtime::{SubNet, UNet2DConditionModel};
use unas_space::{Layout, UNetArch};

use super::pipeline_folder::{write_pipeline_folder, TextSide};
use super::CliError;

/// What `--weights` wrote.
pub struct ExportedWeights {
    /// The U-Net folder.
    pub dir: PathBuf,
    /// The supernet folder the weights came from.
    pub supernet: PathBuf,
}

/// Writes `out/{unet,flexible_unet}/` for `arch`: `config.json` (diffusers' config, sample
/// size `latent`), `diffusion_pytorch_model.safetensors` and `weights.json` (`provenance`).
/// The folder is written beside its place and renamed over any previous one: never half of
/// it. Returns the folder.
pub fn write_unet_folder(
    arch: &UNetArch,
    latent: usize,
    unet: &UNet2DConditionModel<Cpu>,
    provenance: &serde_json::Value,
    out: &Path,
) -> Result<PathBuf, CliError> {
    let name = unet_folder(arch);
    let io = |p: &Path, e: std::io::Error| CliError::input(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let tmp = out.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let config = unas_space::diffusers::export_config(arch, latent);
    let text = serde_json::to_string_pretty(&config).expect("JSON values serialise") + "\n";
    std::fs::write(tmp.join("config.json"), text).map_err(|e| io(&tmp, e))?;
    unet.save(&tmp.join("diffusion_pytorch_model.safetensors"))
        .map_err(CliError::failure)?;
    std::fs::write(
        tmp.join("weights.json"),
        serde_json::to_string_pretty(provenance).expect("JSON values serialise") + "\n",
    )
    .map_err(|e| io(&tmp, e))?;
    let dir = out.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))?;
    Ok(dir)
}

/// The folder name of `arch`'s U-Net in a pipeline folder.
pub fn unet_folder(arch: &UNetArch) -> &'static str {
    match arch.layout {
        Layout::Diffusers => "unet",
        Layout::Flexible => "flexible_unet",
    }
}

/// Writes the pipeline folder `out/` for `arch` ([`write_pipeline_folder`]; only the U-Net
/// folder without `text`) with the weights `arch` inherits from the first supernet under
/// `root` that holds it, sorted by folder (after the study's `finetune_steps` when its
/// objective is `supernet-finetune`: the weights it scored); `unet/weights.json` names that supernet, its
/// settings hash, seed and weights' SHA-256.
pub fn export_weights(
    arch: &UNetArch,
    proxy: &Proxy,
    text: Option<&TextSide>,
    root: &Path,
    out: &Path,
) -> Result<ExportedWeights, CliError> {
    let dirs = supernet_store::supernet_dirs(root)
        .map_err(|e| CliError::input(format!("--weights: {e}")))?;
    let mut why = Vec::new();
    for d in dirs {
        // Only the supernet used has its weights read.
        let info = supernet_store::read_info(&d).map_err(CliError::input)?;
        if let Err(e) = supernet_store::holds(&info, arch) {
            why.push(format!("{}: {e}", d.display()));
            continue;
        }
        let (info, unet) = supernet_store::load(&d).map_err(CliError::input)?;
        let data = proxy.describe_data();
        if info.data != data {
            return Err(CliError::input(format!(
                "--weights: supernet {} was trained on {}, the study's data is {data}",
                d.display(),
                info.data
            )));
        }
        let sub = SubNet::new(arch, &info.arch).map_err(CliError::failure)?;
        let mut weights = sub.extract(&unet);
        // A study that scored candidates after fine-tuning gets the weights it scored.
        let cfg = proxy.config();
        let how = match cfg.objective {
            Objective::SupernetFinetune => {
                let k = cfg.finetune_steps;
                weights = proxy
                    .finetuned_model(arch, weights, info.settings.seed, k)
                    .map_err(|e| CliError::failure(format!("--weights: fine-tuning: {e}")))?;
                format!(
                    "inherited from the supernet, then fine-tuned {k} steps with the batches, \
                     timesteps and noise of its seed (as the study scored it)"
                )
            }
            _ => "inherited from the supernet, zero-shot (not trained alone)".to_string(),
        };
        let provenance = serde_json::json!({
            "arch": arch.hash_id(),
            "weights": how,
            "supernet": {
                "folder": d.display().to_string(),
                "topology": info.topology,
                "settings_hash": info.settings_hash,
                "seed": info.settings.seed,
                "steps": info.steps,
                "weights_sha256": info.weights_sha256,
            },
            "unas": env!("CARGO_PKG_VERSION"),
        });
        let dir = write_pipeline_folder(arch, &weights, &provenance, proxy, text, out)?;
        return Ok(ExportedWeights { dir, supernet: d });
    }
    Err(CliError::input(format!(
        "--weights: no supernet in {} holds arch {}{}",
        root.display(),
        arch.hash_id(),
        if why.is_empty() {
            " (no trained supernet there)".to_string()
        } else {
            format!(" ({})", why.join("; "))
        }
    )))
}
