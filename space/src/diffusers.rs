//! diffusers `config.json` export and import.
//!
//! Two forms:
//! - **`UNet2DConditionModel`** for diffusers-layout architectures that class can build
//!   (every block has 0 or one attention per ResNet, mid block R, A, R, attention GroupNorm eps
//!   1e-6). For SD1.5 the fields equal the official `unet/config.json`. Fields whose value is
//!   diffusers' default and absent from SD1.5's file (`use_linear_projection`,
//!   `transformer_layers_per_block`, `time_embedding_dim`) are written only when they differ.
//! - **Per-block form** for everything else. Flexible-layout architectures are written in
//!   DeciDiffusion's `FlexibleUNet2DConditionModel` schema (`{"_class_name":
//!   "FlexibleUNet2DConditionModel", "configurations": {...}}`, the keys its released code reads),
//!   so DeciDiffusion's own loader accepts them. Deci's class takes its stem from
//!   `UNet2DConditionModel`'s defaults, so the complete unas description is added under the key
//!   `unas` (ignored by Deci's code); import prefers it. Other architectures are written as
//!   `{"_class_name": "UnasUNet2DConditionModel", "unas": {...}}`.

use serde_json::{json, Map, Value};

use crate::arch::{DownStage, Interleave, Layout, MidBlock, Stem, UNetArch, UpStage};
use crate::error::ArchError;

/// Class name of the per-block form for non-flexible architectures diffusers cannot express.
pub const UNAS_CLASS: &str = "UnasUNet2DConditionModel";

/// Why an architecture cannot be written as a `UNet2DConditionModel` config (None if it can).
pub fn unet2d_incompatibility(arch: &UNetArch) -> Option<String> {
    if arch.layout != Layout::Diffusers {
        return Some("flexible layout (DeciDiffusion semantics)".into());
    }
    if (arch.mid.resnets, arch.mid.attentions) != (2, 1) {
        return Some("mid block other than ResNet, attention, ResNet".into());
    }
    if arch.stem.attention_norm_eps != 1e-6 {
        return Some("attention GroupNorm eps other than 1e-6".into());
    }
    if arch.stem.base_channels != arch.down[0].out_channels {
        return Some("conv_in width differs from stage 0's width".into());
    }
    if arch.stem.freq_shift.fract() != 0.0 {
        return Some("non-integer freq_shift".into());
    }
    None
}

/// The `config.json` value for `arch` (see the module docs for the form chosen).
pub fn export_config(arch: &UNetArch, sample_size: usize) -> Value {
    if unet2d_incompatibility(arch).is_none() {
        export_unet2d(arch, sample_size)
    } else if arch.layout == Layout::Flexible {
        export_flexible(arch, sample_size)
    } else {
        json!({ "_class_name": UNAS_CLASS, "sample_size": sample_size, "unas": arch })
    }
}

fn export_unet2d(arch: &UNetArch, sample_size: usize) -> Value {
    let st = &arch.stem;
    let n = arch.stages();
    let widths: Vec<usize> = arch.down.iter().map(|d| d.out_channels).collect();
    let layers: Vec<usize> = arch.down.iter().map(|d| d.resnets).collect();
    let down_types: Vec<&str> = arch
        .down
        .iter()
        .map(|d| {
            if d.attentions > 0 {
                "CrossAttnDownBlock2D"
            } else {
                "DownBlock2D"
            }
        })
        .collect();
    let up_types: Vec<&str> = arch
        .up
        .iter()
        .map(|u| {
            if u.attentions > 0 {
                "CrossAttnUpBlock2D"
            } else {
                "UpBlock2D"
            }
        })
        .collect();
    let heads = match (st.heads, st.head_dim) {
        (Some(h), _) => json!(h),
        (None, Some(d)) => json!(widths.iter().map(|w| w / d).collect::<Vec<_>>()),
        _ => json!(8),
    };
    let layers_value = if layers.iter().all(|&l| l == layers[0]) {
        json!(layers[0])
    } else {
        json!(layers)
    };
    let mut m = Map::new();
    m.insert("_class_name".into(), json!("UNet2DConditionModel"));
    m.insert("act_fn".into(), json!("silu"));
    m.insert("attention_head_dim".into(), heads);
    m.insert("block_out_channels".into(), json!(widths));
    m.insert("center_input_sample".into(), json!(false));
    m.insert("cross_attention_dim".into(), json!(st.cross_attention_dim));
    m.insert("down_block_types".into(), json!(down_types));
    m.insert("downsample_padding".into(), json!(1));
    m.insert("flip_sin_to_cos".into(), json!(st.flip_sin_to_cos));
    m.insert("freq_shift".into(), json!(st.freq_shift as i64));
    m.insert("in_channels".into(), json!(st.in_channels));
    m.insert("layers_per_block".into(), layers_value);
    m.insert("mid_block_scale_factor".into(), json!(1));
    m.insert("norm_eps".into(), json!(st.norm_eps));
    m.insert("norm_num_groups".into(), json!(st.norm_groups));
    m.insert("out_channels".into(), json!(st.out_channels));
    m.insert("sample_size".into(), json!(sample_size));
    m.insert("up_block_types".into(), json!(up_types));
    if st.use_linear_projection {
        m.insert("use_linear_projection".into(), json!(true));
    }
    if st.transformer_depth != 1 {
        m.insert(
            "transformer_layers_per_block".into(),
            json!(st.transformer_depth),
        );
    }
    if st.time_embed_dim != 4 * st.base_channels {
        m.insert("time_embedding_dim".into(), json!(st.time_embed_dim));
    }
    debug_assert_eq!(n, arch.up.len());
    Value::Object(m)
}

fn export_flexible(arch: &UNetArch, sample_size: usize) -> Value {
    let n = arch.stages();
    let st = &arch.stem;
    let ins: Vec<usize> = (0..n).map(|s| arch.down_in_channels(s)).collect();
    let outs: Vec<usize> = arch.down.iter().map(|d| d.out_channels).collect();
    let prev: Vec<usize> = (0..n).map(|u| arch.up_channels(u).0).collect();
    json!({
        "_class_name": "FlexibleUNet2DConditionModel",
        "configurations": {
            "sample_size": sample_size,
            "cross_attention_dim": st.cross_attention_dim,
            "add_upsample_mid_block": arch.mid.upsample,
            "mix_block_in_forward": arch.interleave == Interleave::Alternate,
            "down_blocks_in_channels": ins,
            "down_blocks_out_channels": outs,
            "down_blocks_num_resnets": arch.down.iter().map(|d| d.resnets).collect::<Vec<_>>(),
            "down_blocks_num_attentions": arch.down.iter().map(|d| d.attentions).collect::<Vec<_>>(),
            "add_downsample": arch.down.iter().map(|d| d.downsample).collect::<Vec<_>>(),
            "prev_output_channels": prev,
            "up_blocks_num_resnets": arch.up.iter().map(|u| u.resnets).collect::<Vec<_>>(),
            "up_blocks_num_attentions": arch.up.iter().map(|u| u.attentions).collect::<Vec<_>>(),
            "add_upsample": arch.up.iter().map(|u| u.upsample).collect::<Vec<_>>(),
            "temb_dim": st.time_embed_dim,
            "resnet_eps": st.norm_eps,
            "resnet_act_fn": "silu",
            "num_attention_heads": st.heads.unwrap_or(8),
            "mid_num_resnets": arch.mid.resnets - 1,
            "mid_num_attentions": arch.mid.attentions,
        },
        "unas": arch,
    })
}

/// Reads a `config.json` value (either form) back into an architecture. Errors name the JSON
/// field.
pub fn import_config(v: &Value) -> Result<UNetArch, ArchError> {
    if let Some(unas) = v.get("unas") {
        let arch: UNetArch = serde_json::from_value(unas.clone())
            .map_err(|e| ArchError::new("unas", e.to_string()))?;
        arch.validate()?;
        return Ok(arch);
    }
    let class = v.get("_class_name").and_then(Value::as_str).unwrap_or("");
    let arch = match class {
        "FlexibleUNet2DConditionModel" => import_flexible(
            v.get("configurations")
                .ok_or_else(|| ArchError::new("configurations", "missing"))?,
        )?,
        "UNet2DConditionModel" | "" => import_unet2d(v)?,
        other => {
            return Err(ArchError::new(
                "_class_name",
                format!("`{other}` is not a U-Net class unas can read"),
            ))
        }
    };
    arch.validate()?;
    Ok(arch)
}

mod import;

use import::{import_flexible, import_unet2d};
