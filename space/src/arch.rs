//! `UNetArch`: an explicit, serialisable description of a latent-diffusion U-Net.
//!
//! One description covers both diffusers' `UNet2DConditionModel` (SD1.5) and DeciDiffusion's
//! `FlexibleUNet2DConditionModel` (U-Net-NAS). Channel counts that follow from the wiring (a down
//! stage's input, every up stage's channels, the mid block's width) are derived, never stored, so
//! a description cannot contradict itself. [`UNetArch::plan`] turns it into the exact sequence
//! of modules and skip connections that the cost model and the runtime both use.

use serde::{Deserialize, Serialize};

/// How a U-Net's blocks wire their layers and skip connections.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// diffusers' `UNet2DConditionModel`: a down block keeps a skip after each ResNet (+ its
    /// attention, when the block has attentions: then it has one per ResNet), every downsampled
    /// output is a skip, the last down stage does not downsample, the mid block is
    /// ResNet, (attention, ResNet) x n at the lowest resolution. Weight keys use
    /// `resnets.{k}` / `attentions.{k}`.
    Diffusers,
    /// DeciDiffusion's `FlexibleUNet2DConditionModel`: a skip right after each ResNet (before the
    /// attention that follows it), free ResNet and attention counts per block, an optional
    /// downsampled skip per stage, a mid block whose first ResNet runs twice and which may
    /// upsample. Weight keys use `modules_list.{j}`.
    Flexible,
}

/// Order of ResNets and attentions inside a block.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord,
)]
#[serde(rename_all = "kebab-case")]
pub enum Interleave {
    /// R, A, R, A, ... then the surplus of either kind (DeciDiffusion's `mix_block_in_forward`).
    #[default]
    Alternate,
    /// All ResNets, then all attentions (`mix_block_in_forward = false`; flexible layout only).
    ResnetsFirst,
}

/// Layers outside the stages: input/output convolutions, time embedding, and the settings shared
/// by every block (attention heads, normalisation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stem {
    /// Latent channels in (4 for SD's VAE).
    #[serde(default = "default_latent_channels")]
    pub in_channels: usize,
    /// Latent channels out (4).
    #[serde(default = "default_latent_channels")]
    pub out_channels: usize,
    /// Output width of `conv_in`, input width of stage 0 and size of the sinusoidal timestep
    /// projection (diffusers' `block_out_channels[0]`; 320 in SD1.5).
    pub base_channels: usize,
    /// Time-embedding width fed to every ResNet (1280 in SD1.5).
    pub time_embed_dim: usize,
    /// Width of the text embeddings attended to (768 for CLIP ViT-L/14).
    pub cross_attention_dim: usize,
    /// Number of attention heads in every attention block (SD1.5: 8). Exactly one of `heads`
    /// and `head_dim` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<usize>,
    /// Channels per attention head (SD2-style); heads = channels / head_dim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    /// GroupNorm groups in ResNets, attention blocks and `conv_norm_out` (32).
    #[serde(default = "default_norm_groups")]
    pub norm_groups: usize,
    /// GroupNorm epsilon of ResNets and `conv_norm_out` (1e-5).
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// GroupNorm epsilon at the input of attention (Transformer2D) blocks (1e-6 in diffusers).
    #[serde(default = "default_attention_norm_eps")]
    pub attention_norm_eps: f64,
    /// BasicTransformerBlocks per attention block (diffusers' `transformer_layers_per_block`, 1).
    #[serde(default = "default_one")]
    pub transformer_depth: usize,
    /// `proj_in`/`proj_out` as linear layers (SD2) instead of 1x1 convolutions (SD1.5: false).
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Sinusoidal embedding order: cos first (true in SD1.5).
    #[serde(default = "default_true")]
    pub flip_sin_to_cos: bool,
    /// Sinusoidal frequency shift (diffusers' `freq_shift`, 0 in SD1.5).
    #[serde(default)]
    pub freq_shift: f64,
}

impl Stem {
    /// Whether `channels` split into the attention heads: divisible by `heads`, or by
    /// `head_dim` when that is set instead; the error says which.
    pub fn heads_divide(&self, channels: usize) -> Result<(), String> {
        match (self.heads, self.head_dim) {
            (Some(h), _) if h > 0 && !channels.is_multiple_of(h) => Err(format!(
                "{channels} channels are not divisible by heads = {h}"
            )),
            (None, Some(d)) if d > 0 && !channels.is_multiple_of(d) => Err(format!(
                "{channels} channels are not divisible by head_dim = {d}"
            )),
            _ => Ok(()),
        }
    }
}

/// One stage on the way down: ResNets and attentions at one resolution, then an optional
/// downsample. Its input width is the previous stage's output (or `stem.base_channels`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct DownStage {
    /// Output channels of the stage's ResNets and attentions.
    pub out_channels: usize,
    /// ResNet blocks (>= 1).
    pub resnets: usize,
    /// Attention (Transformer2D) blocks.
    pub attentions: usize,
    /// Ends with a 3x3 stride-2 convolution.
    pub downsample: bool,
    /// The downsampled output is kept as a skip connection.
    #[serde(default = "default_true")]
    pub keep_downsample_skip: bool,
}

/// The block between the down and up paths, at the last down stage's width.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct MidBlock {
    /// ResNet blocks in all, the first one included (>= 1; SD1.5: 2, U-Net-NAS: 5).
    pub resnets: usize,
    /// Attention blocks (SD1.5: 1, U-Net-NAS: 2).
    pub attentions: usize,
    /// Ends with a nearest-2x upsample + 3x3 convolution (U-Net-NAS: true).
    #[serde(default)]
    pub upsample: bool,
}

/// One stage on the way up, mirroring down stage `n - 1 - i`: each ResNet concatenates one skip.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct UpStage {
    /// ResNet blocks (>= 1; each consumes one skip connection).
    pub resnets: usize,
    /// Attention blocks.
    pub attentions: usize,
    /// Ends with a nearest-2x upsample + 3x3 convolution.
    pub upsample: bool,
}

/// A complete U-Net description. See the module docs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UNetArch {
    /// A human name; not part of the architecture's identity (hash).
    #[serde(default)]
    pub name: String,
    /// Block wiring semantics.
    pub layout: Layout,
    /// Order of ResNets and attentions inside blocks.
    #[serde(default)]
    pub interleave: Interleave,
    /// Input/output and shared settings.
    pub stem: Stem,
    /// Down stages, highest resolution first.
    pub down: Vec<DownStage>,
    /// Mid block.
    pub mid: MidBlock,
    /// Up stages, lowest resolution first (as many as down stages).
    pub up: Vec<UpStage>,
    /// Sampling steps the network is meant to run with: set by a time-to-image search, where
    /// the step count is a knob beside the blocks (part of the id then); absent otherwise, so
    /// ids of architectures without it are unchanged. Not part of the network: plans, costs
    /// and weights ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_steps: Option<usize>,
}

impl UNetArch {
    /// Input channels of down stage `s`.
    pub fn down_in_channels(&self, s: usize) -> usize {
        if s == 0 {
            self.stem.base_channels
        } else {
            self.down[s - 1].out_channels
        }
    }

    /// Width of the mid block (the last down stage's output).
    pub fn mid_channels(&self) -> usize {
        self.down
            .last()
            .map_or(self.stem.base_channels, |d| d.out_channels)
    }

    /// Channels of up stage `u`: (previous output, block "in" = mirrored down stage's input,
    /// block "out" = mirrored down stage's output).
    pub fn up_channels(&self, u: usize) -> (usize, usize, usize) {
        let n = self.down.len();
        let d = n - 1 - u;
        let prev = if u == 0 {
            self.mid_channels()
        } else {
            self.down[d + 1].out_channels
        };
        (prev, self.down_in_channels(d), self.down[d].out_channels)
    }

    /// Attention heads for a block of `channels` channels.
    pub fn heads_for(&self, channels: usize) -> usize {
        match (self.stem.heads, self.stem.head_dim) {
            (Some(h), _) => h,
            (None, Some(d)) if d > 0 => channels / d,
            _ => 1,
        }
    }

    /// Number of stages (down stages = up stages).
    pub fn stages(&self) -> usize {
        self.down.len()
    }
}

fn default_latent_channels() -> usize {
    4
}
fn default_norm_groups() -> usize {
    32
}
fn default_norm_eps() -> f64 {
    1e-5
}
fn default_attention_norm_eps() -> f64 {
    1e-6
}
fn default_one() -> usize {
    1
}
fn default_true() -> bool {
    true
}
