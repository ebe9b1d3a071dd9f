//! Exact cost model: parameters and multiply-accumulates (MACs) per module and in total.
//!
//! Parameters follow diffusers' module definitions exactly (every weight and bias, GroupNorm and
//! LayerNorm affine parameters included). MACs count the multiply-accumulates of convolutions,
//! linear layers and the two attention matmuls (QKᵀ and AV); normalisation, activations, softmax
//! and additions are not MACs and are not counted.

use crate::error::SpaceError;
use crate::plan::{ModuleKind, Plan, Section};
use crate::UNetArch;

/// What one forward pass is costed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostQuery {
    /// Latent height (64 for 512 px with SD's VAE).
    pub height: usize,
    /// Latent width.
    pub width: usize,
    /// Batch (2 for classifier-free guidance of one image).
    pub batch: usize,
    /// Text tokens attended to (77 for CLIP).
    pub text_len: usize,
}

impl Default for CostQuery {
    /// 64x64 latent, batch 2, 77 text tokens: one guided SD step at 512 px.
    fn default() -> Self {
        Self {
            height: 64,
            width: 64,
            batch: 2,
            text_len: 77,
        }
    }
}

/// Cost of one module.
#[derive(Clone, Debug, PartialEq)]
pub struct ModuleCost {
    /// Index into [`Plan::modules`].
    pub module: usize,
    /// Where it sits.
    pub section: Section,
    /// Weight-key prefix.
    pub key: String,
    /// Kind and shape.
    pub kind: ModuleKind,
    /// Latent divisor of the resolution it runs at (its input).
    pub input_div: usize,
    /// Times it runs in one forward (2 for the flexible mid block's first ResNet).
    pub runs: usize,
    /// Parameters.
    pub params: u64,
    /// MACs of all its runs in one forward.
    pub macs: u64,
}

/// Costs of a whole network.
#[derive(Clone, Debug, PartialEq)]
pub struct Cost {
    /// Per module, in plan order.
    pub modules: Vec<ModuleCost>,
    /// Total parameters.
    pub params: u64,
    /// Total MACs of one forward.
    pub macs: u64,
}

/// Parameters of one module.
pub fn module_params(kind: &ModuleKind) -> u64 {
    let conv = |cin: u64, cout: u64, k: u64| k * k * cin * cout + cout;
    let linear = |i: u64, o: u64| i * o + o;
    match *kind {
        ModuleKind::ConvIn {
            in_channels,
            out_channels,
        } => conv(in_channels as u64, out_channels as u64, 3),
        ModuleKind::TimeEmbedding {
            proj_dim,
            embed_dim,
        } => linear(proj_dim as u64, embed_dim as u64) + linear(embed_dim as u64, embed_dim as u64),
        ModuleKind::Resnet {
            in_channels,
            out_channels,
            temb_channels,
        } => {
            let (i, o, t) = (
                in_channels as u64,
                out_channels as u64,
                temb_channels as u64,
            );
            let shortcut = if i != o { conv(i, o, 1) } else { 0 };
            2 * i + conv(i, o, 3) + linear(t, o) + 2 * o + conv(o, o, 3) + shortcut
        }
        ModuleKind::Attention {
            channels,
            cross_attention_dim,
            depth,
            ..
        } => {
            let (c, d) = (channels as u64, cross_attention_dim as u64);
            let block = 2 * c            // norm1
                + 3 * c * c + linear(c, c) // attn1: q, k, v (no bias), out
                + 2 * c                    // norm2
                + c * c + 2 * d * c + linear(c, c) // attn2: q, k, v from text, out
                + 2 * c                    // norm3
                + linear(c, 8 * c)         // GEGLU proj (2 x 4C)
                + linear(4 * c, c); // ff out
            2 * c + linear(c, c) + depth as u64 * block + linear(c, c)
        }
        ModuleKind::Downsample { channels } | ModuleKind::Upsample { channels } => {
            conv(channels as u64, channels as u64, 3)
        }
        ModuleKind::ConvOut {
            in_channels,
            out_channels,
        } => 2 * in_channels as u64 + conv(in_channels as u64, out_channels as u64, 3),
    }
}

/// MACs of one run of a module whose input is `h` x `w`.
pub fn module_macs(kind: &ModuleKind, h: u64, w: u64, q: &CostQuery) -> u64 {
    let b = q.batch as u64;
    let hw = h * w;
    match *kind {
        ModuleKind::ConvIn {
            in_channels,
            out_channels,
        }
        | ModuleKind::ConvOut {
            in_channels,
            out_channels,
        } => b * hw * 9 * in_channels as u64 * out_channels as u64,
        ModuleKind::TimeEmbedding {
            proj_dim,
            embed_dim,
        } => b * (proj_dim as u64 * embed_dim as u64 + (embed_dim * embed_dim) as u64),
        ModuleKind::Resnet {
            in_channels,
            out_channels,
            temb_channels,
        } => {
            let (i, o, t) = (
                in_channels as u64,
                out_channels as u64,
                temb_channels as u64,
            );
            let shortcut = if i != o { hw * i * o } else { 0 };
            b * (hw * 9 * i * o + t * o + hw * 9 * o * o + shortcut)
        }
        ModuleKind::Attention {
            channels,
            cross_attention_dim,
            depth,
            ..
        } => {
            let (c, d, n, l) = (
                channels as u64,
                cross_attention_dim as u64,
                hw,
                q.text_len as u64,
            );
            let self_attn = 4 * n * c * c + 2 * n * n * c;
            let cross_attn = 2 * n * c * c + 2 * l * d * c + 2 * n * l * c;
            let ff = n * c * 8 * c + n * 4 * c * c;
            b * (2 * n * c * c + depth as u64 * (self_attn + cross_attn + ff))
        }
        ModuleKind::Downsample { channels } => {
            let c = channels as u64;
            b * h.div_ceil(2) * w.div_ceil(2) * 9 * c * c
        }
        ModuleKind::Upsample { channels } => {
            let c = channels as u64;
            b * 4 * hw * 9 * c * c
        }
    }
}

impl Plan {
    /// Parameters and MACs of every module for the query.
    pub fn cost(&self, q: &CostQuery) -> Result<Cost, SpaceError> {
        if !q.height.is_multiple_of(self.max_div) || !q.width.is_multiple_of(self.max_div) {
            return Err(SpaceError::Query(format!(
                "a {}x{} latent is not divisible by this U-Net's downsampling factor {}",
                q.height, q.width, self.max_div
            )));
        }
        if q.height == 0 || q.width == 0 || q.batch == 0 {
            return Err(SpaceError::Query(
                "latent size and batch must be at least 1".into(),
            ));
        }
        let mut modules: Vec<ModuleCost> = self
            .modules
            .iter()
            .enumerate()
            .map(|(i, m)| ModuleCost {
                module: i,
                section: m.section,
                key: m.key.clone(),
                kind: m.kind,
                input_div: 0,
                runs: 0,
                params: module_params(&m.kind),
                macs: 0,
            })
            .collect();
        for step in &self.steps {
            let h = (q.height / step.input_div) as u64;
            let w = (q.width / step.input_div) as u64;
            let mc = &mut modules[step.module];
            mc.input_div = step.input_div;
            mc.runs += 1;
            mc.macs += module_macs(&mc.kind, h, w, q);
        }
        let params = modules.iter().map(|m| m.params).sum();
        let macs = modules.iter().map(|m| m.macs).sum();
        Ok(Cost {
            modules,
            params,
            macs,
        })
    }
}

impl UNetArch {
    /// Total parameters (no query needed).
    pub fn params(&self) -> Result<u64, crate::ArchError> {
        Ok(self
            .plan()?
            .modules
            .iter()
            .map(|m| module_params(&m.kind))
            .sum())
    }
}
