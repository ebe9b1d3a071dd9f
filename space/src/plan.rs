//! The execution plan of a `UNetArch`: its unique modules (with diffusers weight-key prefixes)
//! and the ordered steps of one forward pass, including skip connections and resolutions.
//!
//! Building the plan *is* validation: every skip an up-stage ResNet consumes must have been
//! produced on the way down with the channels and resolution that ResNet was built for, and
//! every skip produced must be consumed. The cost model and the runtime both walk this plan, so
//! they cannot disagree about what an architecture is.

mod check;
mod walk;

use crate::arch::{Interleave, UNetArch};
use crate::error::ArchError;

/// Where a module sits in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// Stem layers before the down path (`conv_in`, time embedding).
    StemIn,
    /// Down stage `s`.
    Down(usize),
    /// The mid block.
    Mid,
    /// Up stage `u` (0 = lowest resolution).
    Up(usize),
    /// Stem layers after the up path (`conv_norm_out`, `conv_out`).
    StemOut,
}

impl std::fmt::Display for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Section::StemIn => write!(f, "stem"),
            Section::Down(s) => write!(f, "down {s}"),
            Section::Mid => write!(f, "mid"),
            Section::Up(u) => write!(f, "up {u}"),
            Section::StemOut => write!(f, "stem"),
        }
    }
}

/// The kind and shape of one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// 3x3 convolution latent -> base channels (`conv_in`).
    ConvIn {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
    },
    /// Sinusoidal projection + linear_1 + SiLU + linear_2 (`time_embedding`).
    TimeEmbedding {
        /// Sinusoidal projection size.
        proj_dim: usize,
        /// Embedding width.
        embed_dim: usize,
    },
    /// `ResnetBlock2D`; `in_channels` includes a concatenated skip, if any.
    Resnet {
        /// Input channels (after concatenating the skip).
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
        /// Time-embedding width.
        temb_channels: usize,
    },
    /// `Transformer2DModel` with `depth` BasicTransformerBlocks (self-attn, cross-attn, GEGLU).
    Attention {
        /// Channels (= inner dim = heads * head dim).
        channels: usize,
        /// Attention heads.
        heads: usize,
        /// Text-embedding width.
        cross_attention_dim: usize,
        /// BasicTransformerBlocks.
        depth: usize,
    },
    /// `Downsample2D`: 3x3 stride-2 convolution.
    Downsample {
        /// Channels in and out.
        channels: usize,
    },
    /// `Upsample2D`: nearest 2x then 3x3 convolution.
    Upsample {
        /// Channels in and out.
        channels: usize,
    },
    /// GroupNorm + SiLU + 3x3 convolution base -> latent (`conv_norm_out`, `conv_out`).
    ConvOut {
        /// Input channels.
        in_channels: usize,
        /// Output channels.
        out_channels: usize,
    },
}

impl ModuleKind {
    /// Short type name for tables.
    pub fn type_name(&self) -> &'static str {
        match self {
            ModuleKind::ConvIn { .. } => "conv_in",
            ModuleKind::TimeEmbedding { .. } => "time_embedding",
            ModuleKind::Resnet { .. } => "resnet",
            ModuleKind::Attention { .. } => "attention",
            ModuleKind::Downsample { .. } => "downsample",
            ModuleKind::Upsample { .. } => "upsample",
            ModuleKind::ConvOut { .. } => "conv_out",
        }
    }

    /// (input, output) channels.
    pub fn channels(&self) -> (usize, usize) {
        match *self {
            ModuleKind::ConvIn {
                in_channels,
                out_channels,
            }
            | ModuleKind::ConvOut {
                in_channels,
                out_channels,
            }
            | ModuleKind::Resnet {
                in_channels,
                out_channels,
                ..
            } => (in_channels, out_channels),
            ModuleKind::TimeEmbedding {
                proj_dim,
                embed_dim,
            } => (proj_dim, embed_dim),
            ModuleKind::Attention { channels, .. }
            | ModuleKind::Downsample { channels }
            | ModuleKind::Upsample { channels } => (channels, channels),
        }
    }
}

/// One module with weights.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanModule {
    /// Weight-key prefix in diffusers' naming (`down_blocks.1.attentions.0`,
    /// `mid_block.modules_list.3`, `conv_in`). For `ConvOut` the prefix is empty: its keys are
    /// `conv_norm_out.*` and `conv_out.*`; for `TimeEmbedding` it is `time_embedding`.
    pub key: String,
    /// Kind and shape.
    pub kind: ModuleKind,
    /// Where it sits.
    pub section: Section,
    /// Group-norm epsilon used inside it (ResNets: `stem.norm_eps`; attentions:
    /// `stem.attention_norm_eps`).
    pub norm_eps: f64,
}

/// One step of the forward pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into [`Plan::modules`].
    pub module: usize,
    /// Spatial divisor of the step's input relative to the latent (1, 2, 4, ...).
    pub input_div: usize,
    /// Channels of the skip concatenated to the input before this step (up-stage ResNets).
    pub pop_skip: Option<usize>,
    /// The step's output is pushed on the skip stack.
    pub push_skip: bool,
}

/// The execution plan; see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Unique modules, in weight-key order of appearance.
    pub modules: Vec<PlanModule>,
    /// Forward steps (the time embedding is step 0's companion: it runs once, before `conv_in`,
    /// and is listed as the first step).
    pub steps: Vec<Step>,
    /// Largest spatial divisor reached (the latent must be divisible by it).
    pub max_div: usize,
}

/// One entry of a block: its `k`-th ResNet or `k`-th attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockEntry {
    /// The `k`-th ResNet.
    Resnet(usize),
    /// The `k`-th attention.
    Attention(usize),
}

/// The entries of a block with `r` ResNets and `a` attentions in forward order.
pub fn block_order(interleave: Interleave, r: usize, a: usize) -> Vec<BlockEntry> {
    use BlockEntry::{Attention, Resnet};
    match interleave {
        Interleave::Alternate => (0..r.max(a))
            .flat_map(|i| {
                [
                    (i < r).then_some(Resnet(i)),
                    (i < a).then_some(Attention(i)),
                ]
            })
            .flatten()
            .collect(),
        Interleave::ResnetsFirst => (0..r).map(Resnet).chain((0..a).map(Attention)).collect(),
    }
}

impl UNetArch {
    /// Checks the description and builds its execution plan.
    pub fn plan(&self) -> Result<Plan, ArchError> {
        self.check_static()?;
        walk::walk(self)
    }

    /// Validates the description (see [`UNetArch::plan`]).
    pub fn validate(&self) -> Result<(), ArchError> {
        self.plan().map(|_| ())
    }
}
