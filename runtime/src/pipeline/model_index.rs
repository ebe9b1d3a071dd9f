//! `model_index.json` of a diffusers `StableDiffusionPipeline` folder.

use serde_json::{json, Value};

/// The `model_index.json` of a text-to-image folder whose U-Net is in `unet_folder`: `unet`
/// (diffusers' `UNet2DConditionModel`) or `flexible_unet` (DeciDiffusion's layout), with
/// CLIP's text encoder and tokenizer, an `AutoencoderKL` and a `DDIMScheduler`, and no
/// safety checker.
pub fn model_index(unet_folder: &str) -> Value {
    let unet_class = if unet_folder == "flexible_unet" {
        "FlexibleUNet2DConditionModel"
    } else {
        "UNet2DConditionModel"
    };
    let mut v = json!({
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.42.1",
        "feature_extractor": [null, null],
        "image_encoder": [null, null],
        "requires_safety_checker": false,
        "safety_checker": [null, null],
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "vae": ["diffusers", "AutoencoderKL"],
    });
    v[unet_folder] = json!(["diffusers", unet_class]);
    v
}
