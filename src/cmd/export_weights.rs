//! `unas export … --weights`: the picked architecture's weights, inherited from a trained
//! supernet, in a diffusers pipeline folder (the U-Net as `unet/` for diffusers' layout,
//! `flexible_unet/` for DeciDiffusion's; the data's VAE, text encoder, tokenizer and scheduler
//! beside it: [`super::pipeline_folder`]) that `unas generate --model DIR` and diffusers read.

use std::path::{Path, PathBuf};

use unas_evaluator::quality::proxy::{Objective, Proxy};
use unas_evaluator::quality::supernet_store;
use unas_runtime::SubNet;
use unas_space::UNetArch;

use super::pipeline_folder::{write_pipeline_folder, TextSide};
use super::CliError;

/// What `--weights` wrote.
pub struct ExportedWeights {
    /// The U-Net folder.
    pub dir: PathBuf,
    /// The supernet folder the weights came from.
    pub supernet: PathBuf,
}

/// Writes the pipeline folder `out/` for `arch` ([`write_pipeline_folder`]; only the U-Net
/// folder without `text`) with the weights `arch` inherits from the first supernet under
/// `root` that holds it, sorted by folder (after the study's `finetune_steps` when its
/// objective is `supernet-finetune`: the weights it scored); `unet/weights.json` names that
/// supernet, its settings hash, seed and the SHA-256 of its weights file.
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
