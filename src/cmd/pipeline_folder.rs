//! A complete diffusers pipeline folder for a U-Net of the proxy's data, as `unas export
//! --weights` and `unas train` write it: `unet/` (or DeciDiffusion's `flexible_unet/`), the
//! data's small VAE as `vae/`, its frozen caption encoder as a CLIP `text_encoder/` over CLIP's
//! BPE vocabulary with CLIP's `tokenizer/` (or, for data encoded by a pipeline, that
//! pipeline's `vae/`, `text_encoder/` and `tokenizer/`), the recipe's DDIM as `scheduler/`, and
//! `model_index.json` — what diffusers' `StableDiffusionPipeline.from_pretrained` and
//! `unas generate --model` read.

use std::path::{Path, PathBuf};

use unas_evaluator::quality::proxy::{Proxy, TEXT_LEN};
use unas_evaluator::quality::small_vae::small_vae_config;
use unas_runtime::device::Cpu;
use unas_runtime::pipeline::model_index;
use unas_runtime::text::{
    clip_vocab::clip_vocab_files, write_clip_tokenizer, ClipTextConfig, ClipTextModel,
    ClipTokenizer, SpecialTokens,
};
use unas_runtime::UNet2DConditionModel;
use unas_space::{Layout, UNetArch};

use super::CliError;

/// The text side of a pipeline folder.
pub enum TextSide {
    /// The proxy's own caption encoder over CLIP's vocabulary (beside the data's small VAE).
    Own(Box<OwnText>),
    /// The data was encoded by this pipeline (`[quality] pipeline`): its `vae/`,
    /// `text_encoder/` and `tokenizer/` are copied.
    Pipeline(PathBuf),
}

/// CLIP's tokenizer padding to the proxy's caption length and the proxy's caption encoder
/// over its vocabulary.
pub struct OwnText {
    config: ClipTextConfig,
    model: ClipTextModel<Cpu>,
    tokenizer: ClipTokenizer,
}

/// The text side of the proxy's data: the encoding pipeline's, or the proxy's caption encoder
/// as a CLIP text model over CLIP's BPE vocabulary, checked to embed every caption of the data
/// as the encoder does; an error says why it cannot (a caption word that is several BPE
/// tokens, punctuation the encoder drops).
pub fn text_side(proxy: &Proxy) -> Result<TextSide, String> {
    if let Some(dir) = &proxy.config().pipeline {
        return Ok(TextSide::Pipeline(dir.clone()));
    }
    let (vocab, merges) = clip_vocab_files();
    let special = SpecialTokens {
        max_length: TEXT_LEN,
        ..SpecialTokens::default()
    };
    let here = Path::new("CLIP vocabulary");
    let tokenizer = ClipTokenizer::from_strings(&vocab, &merges, special, (here, here))
        .map_err(|e| e.to_string())?;
    let captions = &proxy.cache().manifest.captions;
    let (config, model) = proxy
        .caption_encoder()
        .to_clip(&tokenizer, captions)
        .map_err(|e| format!("the data's captions cannot be read by CLIP's tokenizer: {e}"))?;
    Ok(TextSide::Own(Box::new(OwnText {
        config,
        model,
        tokenizer,
    })))
}

fn io(p: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::input(format!("{}: {e}", p.display()))
}

/// Writes component folder `out/name/` through `write` into `out/.name.tmp/`, renamed over
/// any previous one: never half of it.
fn component(
    out: &Path,
    name: &str,
    write: impl FnOnce(&Path) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let tmp = out.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let dir = out.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| io(&dir, e))
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).expect("JSON values serialise") + "\n";
    std::fs::write(path, text).map_err(|e| io(path, e))
}

/// Writes `out/{unet,flexible_unet}/` for `arch`: `config.json` (diffusers' config, sample
/// size `latent`), `diffusion_pytorch_model.safetensors` and `weights.json` (`provenance`),
/// through a temporary folder ([`component`]): never half of it. Returns the folder.
pub fn write_unet_folder(
    arch: &UNetArch,
    latent: usize,
    unet: &UNet2DConditionModel<Cpu>,
    provenance: &serde_json::Value,
    out: &Path,
) -> Result<PathBuf, CliError> {
    let name = unet_folder(arch);
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    component(out, name, |d| {
        write_json(
            &d.join("config.json"),
            &unas_space::diffusers::export_config(arch, latent),
        )?;
        unet.save(&d.join("diffusion_pytorch_model.safetensors"))
            .map_err(CliError::failure)?;
        write_json(&d.join("weights.json"), provenance)
    })?;
    Ok(out.join(name))
}

/// The folder name of `arch`'s U-Net in a pipeline folder.
pub fn unet_folder(arch: &UNetArch) -> &'static str {
    match arch.layout {
        Layout::Diffusers => "unet",
        Layout::Flexible => "flexible_unet",
    }
}

/// Writes the pipeline folder `out/` for `unet` (an architecture of the proxy's data):
/// every component through a temporary folder, `model_index.json` last, so a folder with a
/// `model_index.json` is complete. Without `text` (captions CLIP's tokenizer cannot read) only
/// the U-Net folder is written. Returns the U-Net's folder.
pub fn write_pipeline_folder(
    arch: &UNetArch,
    unet: &UNet2DConditionModel<Cpu>,
    provenance: &serde_json::Value,
    proxy: &Proxy,
    text: Option<&TextSide>,
    out: &Path,
) -> Result<PathBuf, CliError> {
    let latent = proxy.cache().manifest.latent[1];
    let unet_dir = write_unet_folder(arch, latent, unet, provenance, out)?;
    let Some(text) = text else {
        return Ok(unet_dir);
    };
    let index = out.join("model_index.json");
    if index.exists() {
        std::fs::remove_file(&index).map_err(|e| io(&index, e))?;
    }
    match text {
        TextSide::Pipeline(src) => {
            for name in ["tokenizer", "text_encoder", "vae"] {
                component(out, name, |d| copy_files(&src.join(name), d))?;
            }
        }
        TextSide::Own(own) => write_own_text_and_vae(out, own, proxy)?,
    }
    component(out, "scheduler", |d| {
        write_json(
            &d.join("scheduler_config.json"),
            &proxy.config().scheduler_config().to_ddim_json(),
        )
    })?;
    let tmp = out.join(".model_index.json.tmp");
    write_json(&tmp, &model_index(unet_folder(arch)))?;
    std::fs::rename(&tmp, &index).map_err(|e| io(&index, e))?;
    Ok(unet_dir)
}

/// Copies the files (not subfolders) of `src` into `dst`.
fn copy_files(src: &Path, dst: &Path) -> Result<(), CliError> {
    for e in std::fs::read_dir(src).map_err(|e| io(src, e))? {
        let p = e.map_err(|e| io(src, e))?.path();
        if p.is_file() {
            let to = dst.join(p.file_name().expect("a file name"));
            std::fs::copy(&p, &to).map_err(|e| io(&p, e))?;
        }
    }
    Ok(())
}

/// `tokenizer/`, `text_encoder/` and `vae/` of the proxy's own data preparation.
fn write_own_text_and_vae(out: &Path, own: &OwnText, proxy: &Proxy) -> Result<(), CliError> {
    let tokenizer = &own.tokenizer;
    component(out, "tokenizer", |d| {
        write_clip_tokenizer(d, tokenizer.max_length()).map_err(CliError::failure)
    })?;
    component(out, "text_encoder", |d| {
        let t = tokenizer;
        write_json(
            &d.join("config.json"),
            &own.config.to_json_value(t.bos_id(), t.eos_id(), t.pad_id()),
        )?;
        own.model
            .save(&d.join("model.safetensors"))
            .map_err(CliError::failure)
    })?;
    component(out, "vae", |d| {
        let scaling = proxy.cache().manifest.scaling_factor;
        let config = small_vae_config().with_scaling_factor(scaling);
        write_json(
            &d.join("config.json"),
            &config.to_json_value(proxy.config().image_size),
        )?;
        proxy
            .vae()
            .save(&d.join("diffusion_pytorch_model.safetensors"))
            .map_err(CliError::failure)
    })
}
