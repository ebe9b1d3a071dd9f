//! Reading a diffusers `config.json` (`UNet2DConditionModel` or DeciDiffusion's
//! `FlexibleUNet2DConditionModel`) into a unas architecture.

#[allow(unused_imports)]
use super::*;

pub(super) fn get_usize(v: &Value, key: &str) -> Result<Option<usize>, ArchError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x.as_u64().map(|n| Some(n as usize)).ok_or_else(|| {
            ArchError::new(key, format!("expected a non-negative integer, got {x}"))
        }),
    }
}

/// The list `key` of `v`, each element read by `item` (`None`: not of the `expected` kind).
fn get_list<T>(
    v: &Value,
    key: &str,
    expected: &str,
    item: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ArchError> {
    let arr = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| ArchError::new(key, "missing or not a list"))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| item(x).ok_or_else(|| ArchError::new(format!("{key}[{i}]"), expected)))
        .collect()
}

pub(super) fn get_usize_list(v: &Value, key: &str) -> Result<Vec<usize>, ArchError> {
    get_list(v, key, "expected an integer", |x| {
        x.as_u64().map(|n| n as usize)
    })
}

pub(super) fn get_bool_list(v: &Value, key: &str) -> Result<Vec<bool>, ArchError> {
    get_list(v, key, "expected true or false", Value::as_bool)
}

pub(super) fn get_str_list(v: &Value, key: &str) -> Result<Vec<String>, ArchError> {
    get_list(v, key, "expected a string", |x| {
        x.as_str().map(str::to_string)
    })
}

pub(super) fn import_unet2d(v: &Value) -> Result<UNetArch, ArchError> {
    for key in [
        "class_embed_type",
        "addition_embed_type",
        "encoder_hid_dim",
        "num_class_embeds",
    ] {
        if v.get(key).is_some_and(|x| !x.is_null()) {
            return Err(ArchError::new(key, "is not supported by unas"));
        }
    }
    if let Some(t) = v.get("mid_block_type").and_then(Value::as_str) {
        if t != "UNetMidBlock2DCrossAttn" {
            return Err(ArchError::new(
                "mid_block_type",
                format!("`{t}` is not supported"),
            ));
        }
    }
    let widths = get_usize_list(v, "block_out_channels")?;
    let n = widths.len();
    let down_types = get_str_list(v, "down_block_types")?;
    let up_types = get_str_list(v, "up_block_types")?;
    if down_types.len() != n || up_types.len() != n {
        return Err(ArchError::new(
            "down_block_types",
            "down_block_types, up_block_types and block_out_channels differ in length",
        ));
    }
    let layers = match v.get("layers_per_block") {
        Some(Value::Array(_)) => get_usize_list(v, "layers_per_block")?,
        _ => vec![get_usize(v, "layers_per_block")?.unwrap_or(2); n],
    };
    if layers.len() != n {
        return Err(ArchError::new(
            "layers_per_block",
            "length differs from block_out_channels",
        ));
    }
    let depth = match v.get("transformer_layers_per_block") {
        Some(Value::Array(a)) => {
            let d = get_usize_list(v, "transformer_layers_per_block")?;
            if d.iter().any(|&x| x != d[0]) || a.is_empty() {
                return Err(ArchError::new(
                    "transformer_layers_per_block",
                    "per-block transformer depths are not supported",
                ));
            }
            d[0]
        }
        _ => get_usize(v, "transformer_layers_per_block")?.unwrap_or(1),
    };
    // diffusers quirk: `attention_head_dim` is the number of heads unless
    // `num_attention_heads` is given.
    let heads_value = v
        .get("num_attention_heads")
        .filter(|x| !x.is_null())
        .or_else(|| v.get("attention_head_dim"))
        .cloned()
        .unwrap_or(json!(8));
    let (heads, head_dim) = match &heads_value {
        Value::Number(h) => (h.as_u64().map(|h| h as usize), None),
        Value::Array(list) => {
            let hs: Vec<usize> = list
                .iter()
                .filter_map(Value::as_u64)
                .map(|h| h as usize)
                .collect();
            if hs.len() != n || hs.contains(&0) {
                return Err(ArchError::new(
                    "attention_head_dim",
                    format!("needs {n} positive head counts, one per block"),
                ));
            }
            let dims: Vec<usize> = hs.iter().zip(&widths).map(|(h, w)| w / h).collect();
            if hs.iter().all(|&h| h == hs[0]) {
                // The same number of heads everywhere (what save_pretrained writes for a
                // U-Net built with a per-block list of equal counts).
                (Some(hs[0]), None)
            } else if dims.iter().all(|&d| d == dims[0]) {
                (None, Some(dims[0]))
            } else {
                return Err(ArchError::new(
                    "attention_head_dim",
                    "per-block heads are supported only with one head count or one head size \
                     for all blocks",
                ));
            }
        }
        _ => return Err(ArchError::new("attention_head_dim", "expected a number")),
    };
    let cross = match v.get("cross_attention_dim") {
        Some(Value::Number(x)) => x.as_u64().unwrap_or(0) as usize,
        None => 1280,
        Some(_) => {
            return Err(ArchError::new(
                "cross_attention_dim",
                "per-block cross-attention widths are not supported",
            ))
        }
    };
    let base = widths[0];
    let stem = Stem {
        in_channels: get_usize(v, "in_channels")?.unwrap_or(4),
        out_channels: get_usize(v, "out_channels")?.unwrap_or(4),
        base_channels: base,
        time_embed_dim: get_usize(v, "time_embedding_dim")?.unwrap_or(4 * base),
        cross_attention_dim: cross,
        heads,
        head_dim,
        norm_groups: get_usize(v, "norm_num_groups")?.unwrap_or(32),
        norm_eps: v.get("norm_eps").and_then(Value::as_f64).unwrap_or(1e-5),
        attention_norm_eps: 1e-6,
        transformer_depth: depth,
        use_linear_projection: v
            .get("use_linear_projection")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        flip_sin_to_cos: v
            .get("flip_sin_to_cos")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        freq_shift: v.get("freq_shift").and_then(Value::as_f64).unwrap_or(0.0),
    };
    let mut down = Vec::with_capacity(n);
    for s in 0..n {
        let attn = match down_types[s].as_str() {
            "CrossAttnDownBlock2D" => layers[s],
            "DownBlock2D" => 0,
            other => {
                return Err(ArchError::new(
                    format!("down_block_types[{s}]"),
                    format!("`{other}` is not supported"),
                ))
            }
        };
        down.push(DownStage {
            out_channels: widths[s],
            resnets: layers[s],
            attentions: attn,
            downsample: s + 1 < n,
            keep_downsample_skip: true,
        });
    }
    let mut up = Vec::with_capacity(n);
    for u in 0..n {
        let r = layers[n - 1 - u] + 1;
        let attn = match up_types[u].as_str() {
            "CrossAttnUpBlock2D" => r,
            "UpBlock2D" => 0,
            other => {
                return Err(ArchError::new(
                    format!("up_block_types[{u}]"),
                    format!("`{other}` is not supported"),
                ))
            }
        };
        up.push(UpStage {
            resnets: r,
            attentions: attn,
            upsample: u + 1 < n,
        });
    }
    Ok(UNetArch {
        name: String::new(),
        layout: Layout::Diffusers,
        interleave: Interleave::Alternate,
        stem,
        down,
        mid: MidBlock {
            resnets: 2,
            attentions: 1,
            upsample: false,
        },
        up,
        sampling_steps: None,
    })
}

pub(super) fn import_flexible(c: &Value) -> Result<UNetArch, ArchError> {
    let ins = get_usize_list(c, "down_blocks_in_channels")?;
    let outs = get_usize_list(c, "down_blocks_out_channels")?;
    let dr = get_usize_list(c, "down_blocks_num_resnets")?;
    let da = get_usize_list(c, "down_blocks_num_attentions")?;
    let ds = get_bool_list(c, "add_downsample")?;
    let ur = get_usize_list(c, "up_blocks_num_resnets")?;
    let ua = get_usize_list(c, "up_blocks_num_attentions")?;
    let us = get_bool_list(c, "add_upsample")?;
    let n = outs.len();
    for (key, len) in [
        ("down_blocks_in_channels", ins.len()),
        ("down_blocks_num_resnets", dr.len()),
        ("down_blocks_num_attentions", da.len()),
        ("add_downsample", ds.len()),
        ("up_blocks_num_resnets", ur.len()),
        ("up_blocks_num_attentions", ua.len()),
        ("add_upsample", us.len()),
    ] {
        if len != n {
            return Err(ArchError::new(
                key,
                format!("has {len} entries, down_blocks_out_channels has {n}"),
            ));
        }
    }
    if n == 0 || ins[0] != 320 {
        return Err(ArchError::new(
            "down_blocks_in_channels",
            "DeciDiffusion's class has a 320-channel conv_in; other stems need the `unas` key",
        ));
    }
    let stem = Stem {
        in_channels: 4,
        out_channels: 4,
        base_channels: 320,
        time_embed_dim: get_usize(c, "temb_dim")?.unwrap_or(1280),
        cross_attention_dim: get_usize(c, "cross_attention_dim")?.unwrap_or(1280),
        heads: Some(get_usize(c, "num_attention_heads")?.unwrap_or(1)),
        head_dim: None,
        norm_groups: 32,
        norm_eps: c.get("resnet_eps").and_then(Value::as_f64).unwrap_or(1e-6),
        attention_norm_eps: 1e-6,
        transformer_depth: 1,
        use_linear_projection: false,
        flip_sin_to_cos: true,
        freq_shift: 0.0,
    };
    let down = (0..n)
        .map(|s| DownStage {
            out_channels: outs[s],
            resnets: dr[s],
            attentions: da[s],
            downsample: ds[s],
            keep_downsample_skip: s + 1 < n,
        })
        .collect();
    let up = (0..n)
        .map(|u| UpStage {
            resnets: ur[u],
            attentions: ua[u],
            upsample: us[u],
        })
        .collect();
    let mix = c
        .get("mix_block_in_forward")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(UNetArch {
        name: String::new(),
        layout: Layout::Flexible,
        interleave: if mix {
            Interleave::Alternate
        } else {
            Interleave::ResnetsFirst
        },
        stem,
        down,
        mid: MidBlock {
            resnets: get_usize(c, "mid_num_resnets")?.unwrap_or(1) + 1,
            attentions: get_usize(c, "mid_num_attentions")?.unwrap_or(1),
            upsample: c
                .get("add_upsample_mid_block")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        up,
        sampling_steps: None,
    })
}
