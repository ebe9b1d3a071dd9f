//! `SearchSpace`: which knobs of a U-Net vary and their allowed values, plus the fixed stem and
//! optional cost constraints. Knobs:
//!
//! - `stages` (stage count) and `layouts` (`diffusers` and/or `flexible`);
//! - per stage index `s` (0 = highest resolution): output width, down ResNets, down attentions,
//!   up attentions (the up stage mirroring it); up ResNets are not a knob: a valid U-Net needs
//!   exactly one more than its mirrored down stage (one per skip);
//! - flexible layout only: `interleave`, mid ResNets (R0 included) and mid attentions.
//!
//! Each layout fixes the rest: *diffusers* downsamples after every stage but the last, keeps
//! every downsampled skip, has a mid block R, A, R, and a block's attention knob is a switch
//! (0 or one attention per ResNet); *flexible* (DeciDiffusion) downsamples after every stage,
//! drops the last downsampled skip, and its mid block upsamples.
//!
//! A [`Genome`] is one choice of every active knob; it decodes one-to-one into a [`UNetArch`].
//! Sampling is exactly uniform over the valid architectures (counts are computed, not
//! estimated); a mutation changes exactly one knob (see [`Knob`]).

use serde::{Deserialize, Serialize};

use crate::arch::{DownStage, Interleave, Layout, MidBlock, Stem, UNetArch, UpStage};
use crate::cost::CostQuery;
use crate::error::SpaceError;
use crate::load::Source;
use crate::rng::Rng;
use crate::supernet::SubnetSampling;

/// Allowed values of the per-stage knobs at one stage index.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageOptions {
    /// Output widths.
    pub out_channels: Vec<usize>,
    /// Down-stage ResNet counts (>= 1).
    pub down_resnets: Vec<usize>,
    /// Down-stage attention counts.
    pub down_attentions: Vec<usize>,
    /// Attention counts of the up stage that mirrors this stage.
    pub up_attentions: Vec<usize>,
}

/// Knobs that apply to the whole network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlobalOptions {
    /// Stage counts (each needs that many `[[stage]]` entries).
    pub stages: Vec<usize>,
    /// Layouts.
    pub layouts: Vec<Layout>,
    /// Block orders (flexible layout only; diffusers is always `alternate`).
    #[serde(default = "default_interleave")]
    pub interleave: Vec<Interleave>,
    /// Mid-block ResNet counts, the first ResNet included (flexible layout only).
    pub mid_resnets: Vec<usize>,
    /// Mid-block attention counts (flexible layout only).
    pub mid_attentions: Vec<usize>,
    /// Sampling step counts, a knob of a time-to-image search (not of the network): empty
    /// (the default) leaves genomes and architectures without a step count. A study sets it
    /// from `latency.sampling_steps`; it is never drawn when empty, so spaces without it sample
    /// exactly as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sampling_steps: Vec<usize>,
}

fn default_interleave() -> Vec<Interleave> {
    vec![Interleave::Alternate]
}

/// Optional caps applied on top of the structural space (checked on decoded archs).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Maximum U-Net parameters.
    #[serde(default)]
    pub max_params: Option<u64>,
    /// Maximum MACs of one forward at `latent`, `batch`, `text_len`.
    #[serde(default)]
    pub max_macs: Option<u64>,
    /// Latent side for the MACs cap (default 64).
    #[serde(default = "default_latent")]
    pub latent: usize,
    /// Batch for the MACs cap (default 2).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Text tokens for the MACs cap (default 77).
    #[serde(default = "default_text_len")]
    pub text_len: usize,
}

impl Default for Constraints {
    fn default() -> Self {
        Self {
            max_params: None,
            max_macs: None,
            latent: default_latent(),
            batch: default_batch(),
            text_len: default_text_len(),
        }
    }
}

fn default_latent() -> usize {
    64
}
fn default_batch() -> usize {
    2
}
fn default_text_len() -> usize {
    77
}

/// A search space; see the module docs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SearchSpace {
    /// Name.
    pub name: String,
    /// One line about it.
    #[serde(default)]
    pub description: String,
    /// The fixed stem shared by every architecture of the space.
    pub stem: Stem,
    /// Global knobs.
    pub knobs: GlobalOptions,
    /// Per-stage knobs, index 0 = highest resolution.
    pub stage: Vec<StageOptions>,
    /// Optional caps.
    #[serde(default)]
    pub constraints: Constraints,
}

/// One stage's knob values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct StageGene {
    /// Output width.
    pub out_channels: usize,
    /// Down ResNets.
    pub down_resnets: usize,
    /// Down attentions (diffusers layout: 0 or `down_resnets`).
    pub down_attentions: usize,
    /// Up attentions (diffusers layout: 0 or `down_resnets + 1`).
    pub up_attentions: usize,
}

/// One point of a space: a value for every knob. Inactive knobs (mid and interleave under the
/// diffusers layout) hold their canonical values, so genomes and architectures correspond
/// one-to-one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Genome {
    /// Layout.
    pub layout: Layout,
    /// Block order.
    pub interleave: Interleave,
    /// Per-stage values; its length is the stage count.
    pub stages: Vec<StageGene>,
    /// Mid ResNets (R0 included).
    pub mid_resnets: usize,
    /// Mid attentions.
    pub mid_attentions: usize,
    /// Sampling steps (time-to-image searches only; `None` when the space has no such knob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_steps: Option<usize>,
}

/// A knob of a genome. Under the diffusers layout the attention knobs are switches (a block has
/// one attention per ResNet or none) and changing a ResNet count carries them along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Knob {
    /// Stage count (adding a stage gives it the stage's first valid values).
    Stages,
    /// Layout.
    Layout,
    /// Block order (flexible only).
    Interleave,
    /// Width of stage `s`.
    Width(usize),
    /// Down ResNets of stage `s`.
    DownResnets(usize),
    /// Down attentions of stage `s`.
    DownAttentions(usize),
    /// Up attentions of the up stage mirroring stage `s`.
    UpAttentions(usize),
    /// Mid ResNets (flexible only).
    MidResnets,
    /// Mid attentions (flexible only).
    MidAttentions,
    /// Sampling steps (time-to-image searches only).
    SamplingSteps,
}

const DIFFUSERS_MID: (usize, usize) = (2, 1);

impl SearchSpace {
    /// Loads a space from a file or a preset name (`default`, `tiny`).
    pub fn load(spec: &str) -> Result<Self, SpaceError> {
        let src = crate::presets::resolve(spec, crate::presets::SPACE_PRESETS)?;
        Self::from_source(&src)
    }

    /// Parses and validates a space.
    pub fn from_source(src: &Source) -> Result<Self, SpaceError> {
        let space: SearchSpace = src.parse()?;
        space
            .check()
            .map_err(|e| src.invalid_at(&e.field, e.message))?;
        Ok(space)
    }
}

mod check;
mod flat;
mod genome;
mod sample;

pub use flat::FlatKnob;
