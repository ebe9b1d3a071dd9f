//! Per-block lookup tables (Once-for-All / SnapFusion style): every distinct block variant of a
//! search space timed on the device at hand (inside covering networks, synchronising around each
//! block), plus a fitted overhead; a network's predicted latency is the sum of its blocks'
//! entries plus the overhead.
//!
//! A variant is a module's type and shapes at its resolution (plus the skip concatenation of
//! up-stage ResNets); the batch, text length and dtype are the table's settings. The variants of
//! a space depend only on the stage count, layout and widths (and not on how many ResNets or
//! attentions a stage has, beyond having the first, middle and last positions), so the table
//! enumerates every (stage count, layout, widths) combination with the most layers per stage,
//! which covers every architecture of the space exactly.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use unas_space::{
    DownStage, Layout, MidBlock, ModuleKind, Plan, SearchSpace, Source, Step, UNetArch, UpStage,
};

use super::measured::Repeats;
use super::robust::Statistic;
use super::{BlockLatency, LatencyModel, LatencyReport, LatencySetting};
use crate::EvalError;

/// One measured block variant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LutEntry {
    /// Variant key (see [`variant_key`]).
    pub variant: String,
    /// Median milliseconds.
    pub ms: f64,
    /// Interquartile range of the repeats.
    pub iqr_ms: f64,
}

/// Where and how a table was measured.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LutProvenance {
    /// Device description.
    pub device: String,
    /// Backend (`burn flex (CPU)`).
    pub backend: String,
    /// burn version.
    pub burn_version: String,
    /// Date of measurement (UTC, YYYY-MM-DD).
    pub date: String,
    /// The search space it covers.
    pub space: String,
    /// Warm-up and repeats per entry.
    pub repeats: Repeats,
    /// Architectures measured end to end to fit the overhead.
    pub overhead_fit_archs: usize,
    /// The statistic of the repeats (median in tables made before the robust protocol).
    #[serde(default, skip_serializing_if = "Statistic::is_median")]
    pub statistic: Statistic,
    /// The host's noise level when the table was made (spread of a reference forward).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// The noise check's reference forward when the table was made: the lower quartile of its
    /// 15 repeats (ms); `unas latency validate` compares the host's speed now with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_ms: Option<f64>,
    /// The CPU model (`/proc/cpuinfo`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Worker threads of the CPU backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// The 1-minute load average before and after measuring (`/proc/loadavg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<String>,
    /// The last end-to-end check of the table on its machine (`lut:auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
}

/// A lookup table file (`configs/devices/NAME.lut.toml`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LookupTable {
    /// Provenance.
    pub measured: LutProvenance,
    /// The setting every entry was measured at.
    pub setting: LatencySetting,
    /// Milliseconds added to every prediction (end-to-end minus sum of entries, median over the
    /// overhead-fit architectures).
    pub overhead_ms: f64,
    /// Entries, sorted by variant.
    pub entry: Vec<LutEntry>,
    /// The file it was read from (not stored).
    #[serde(skip)]
    pub file: PathBuf,
}

/// The key of a plan step's variant, e.g. `resnet 64+32->64 t128 @8x8` or
/// `attention 64 h2 x64 d1 @16x16`.
pub fn variant_key(kind: &ModuleKind, step: &Step, setting: &LatencySetting) -> String {
    let h = setting.latent / step.input_div;
    let at = format!("@{h}x{h}");
    match *kind {
        ModuleKind::ConvIn {
            in_channels,
            out_channels,
        } => format!("conv_in {in_channels}->{out_channels} {at}"),
        ModuleKind::TimeEmbedding {
            proj_dim,
            embed_dim,
        } => format!("time_embedding {proj_dim}->{embed_dim}"),
        ModuleKind::Resnet {
            in_channels,
            out_channels,
            temb_channels,
        } => match step.pop_skip {
            Some(skip) => format!(
                "resnet {}+{skip}->{out_channels} t{temb_channels} {at}",
                in_channels - skip
            ),
            None => format!("resnet {in_channels}->{out_channels} t{temb_channels} {at}"),
        },
        ModuleKind::Attention {
            channels,
            heads,
            cross_attention_dim,
            depth,
        } => format!("attention {channels} h{heads} x{cross_attention_dim} d{depth} {at}"),
        ModuleKind::Downsample { channels } => format!("downsample {channels} {at}"),
        ModuleKind::Upsample { channels } => format!("upsample {channels} {at}"),
        ModuleKind::ConvOut {
            in_channels,
            out_channels,
        } => format!("conv_out {in_channels}->{out_channels} {at}"),
    }
}

/// Architectures whose block variants together are all the variants of `space`.
pub fn covering_archs(space: &SearchSpace) -> Vec<UNetArch> {
    let mut out = Vec::new();
    for &n in &space.knobs.stages {
        for &layout in &space.knobs.layouts {
            let mut widths: Vec<Vec<usize>> = vec![Vec::new()];
            for s in 0..n {
                widths = widths
                    .into_iter()
                    .flat_map(|w| {
                        space.stage[s].out_channels.iter().map(move |&c| {
                            let mut w = w.clone();
                            w.push(c);
                            w
                        })
                    })
                    .collect();
            }
            for w in widths {
                out.push(covering_arch(space, layout, &w));
            }
        }
    }
    out
}

fn covering_arch(space: &SearchSpace, layout: Layout, widths: &[usize]) -> UNetArch {
    let n = widths.len();
    let flexible = layout == Layout::Flexible;
    let max = |v: &[usize]| v.iter().copied().max().unwrap_or(1);
    let down: Vec<DownStage> = (0..n)
        .map(|s| DownStage {
            out_channels: widths[s],
            resnets: 2,
            attentions: 2,
            downsample: flexible || s + 1 < n,
            keep_downsample_skip: !flexible || s + 1 < n,
        })
        .collect();
    let up = (0..n)
        .map(|u| UpStage {
            resnets: 3,
            attentions: 3,
            upsample: u + 1 < n,
        })
        .collect();
    let (mid_r, mid_a) = if flexible {
        (
            max(&space.knobs.mid_resnets).max(2),
            max(&space.knobs.mid_attentions).max(1),
        )
    } else {
        (2, 1)
    };
    UNetArch {
        name: format!("cover-{n}-{layout:?}-{widths:?}"),
        layout,
        interleave: unas_space::Interleave::Alternate,
        stem: space.stem.clone(),
        down,
        mid: MidBlock {
            resnets: mid_r,
            attentions: mid_a,
            upsample: flexible,
        },
        up,
        sampling_steps: None,
    }
}

/// Progress of building a table.
#[derive(Clone, Debug, PartialEq)]
pub enum LutProgress {
    /// A noise-check reading of the host (spread of a reference forward's repeats).
    Noise {
        /// The reading (0.05 = 5 %).
        level: f64,
    },
    /// `total` covering architectures will be timed step by step.
    Archs {
        /// Architectures to time.
        total: usize,
    },
    /// One covering architecture was timed.
    ArchDone,
    /// The overhead fit starts on `total` architectures.
    Overhead {
        /// Architectures.
        total: usize,
    },
    /// One overhead-fit architecture was measured end to end.
    OverheadDone,
}

impl LookupTable {
    /// Reads a table.
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let src = Source::read(path)?;
        let mut t: LookupTable = src.parse()?;
        t.file = path.to_path_buf();
        t.entry.sort_by(|a, b| a.variant.cmp(&b.variant));
        Ok(t)
    }

    /// Writes the table (via a temporary file and a rename).
    pub fn save(&self, path: &Path) -> Result<(), EvalError> {
        let err = |e: String| EvalError::File {
            file: path.to_path_buf(),
            message: e,
        };
        let text = toml::to_string(self).map_err(|e| err(e.to_string()))?;
        let tmp = path.with_extension("tmp~");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                err(e.to_string())
            })
    }

    fn lookup(&self, variant: &str) -> Option<f64> {
        self.entry
            .binary_search_by(|e| e.variant.as_str().cmp(variant))
            .ok()
            .map(|i| self.entry[i].ms)
    }

    fn sum_blocks(
        &self,
        plan: &Plan,
        setting: &LatencySetting,
    ) -> Result<Vec<BlockLatency>, EvalError> {
        let mut blocks: Vec<BlockLatency> = plan
            .modules
            .iter()
            .map(|m| BlockLatency {
                key: m.key.clone(),
                section: m.section,
                kind: m.kind.type_name(),
                ms: 0.0,
            })
            .collect();
        for step in &plan.steps {
            let variant = variant_key(&plan.modules[step.module].kind, step, setting);
            let ms = self
                .lookup(&variant)
                .ok_or_else(|| EvalError::MissingVariant {
                    table: self.file.clone(),
                    variant,
                })?;
            blocks[step.module].ms += ms;
        }
        Ok(blocks)
    }
}

impl LatencyModel for LookupTable {
    fn describe(&self) -> String {
        format!(
            "lut:{} ({}, {}, {})",
            self.file.display(),
            self.measured.device,
            self.measured.backend,
            self.measured.date
        )
    }

    fn predict(
        &self,
        arch: &UNetArch,
        setting: &LatencySetting,
    ) -> Result<LatencyReport, EvalError> {
        if *setting != self.setting {
            return Err(EvalError::Unsupported(format!(
                "{}: measured at latent {}, batch {}, {} tokens, {}; asked for latent {}, batch {}, \
                 {} tokens, {}",
                self.file.display(),
                self.setting.latent,
                self.setting.batch,
                self.setting.text_len,
                self.setting.dtype.name(),
                setting.latent,
                setting.batch,
                setting.text_len,
                setting.dtype.name()
            )));
        }
        let plan = arch.plan()?;
        let blocks = self.sum_blocks(&plan, setting)?;
        let sum: f64 = blocks.iter().map(|b| b.ms).sum();
        Ok(LatencyReport {
            total_ms: sum + self.overhead_ms,
            blocks,
            overhead_ms: self.overhead_ms,
            iqr_ms: None,
            source: format!("lut:{}", self.file.display()),
        })
    }
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
pub use crate::clock::today;
