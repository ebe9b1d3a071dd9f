//! The execution plan of a `UNetArch`: its unique modules (with diffusers weight-key prefixes)
//! and the ordered steps of one forward pass, including skip connections and resolutions.
//!
//! Building the plan *is* validation: every skip an up-stage ResNet consumes must have been
//! produced on the way down with the channels and resolution that ResNet was built for, and
//! every skip produced must be consumed. The cost model and the runtime both walk this plan, so
//! they cannot disagree about what an architecture is.

use crate::arch::{Interleave, Layout, UNetArch};
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

/// Builder state while walking the architecture.
struct Walk<'a> {
    arch: &'a UNetArch,
    plan: Plan,
    div: usize,
    channels: usize,
    skips: Vec<(usize, usize, String)>,
}

impl<'a> Walk<'a> {
    fn add(&mut self, key: String, kind: ModuleKind, section: Section, eps: f64) -> usize {
        self.plan.modules.push(PlanModule {
            key,
            kind,
            section,
            norm_eps: eps,
        });
        self.plan.modules.len() - 1
    }

    fn run(&mut self, module: usize, pop_skip: Option<usize>, push_skip: bool, origin: &str) {
        let kind = self.plan.modules[module].kind;
        self.plan.steps.push(Step {
            module,
            input_div: self.div,
            pop_skip,
            push_skip,
        });
        match kind {
            ModuleKind::Downsample { .. } => self.div *= 2,
            ModuleKind::Upsample { .. } => self.div /= 2,
            _ => {}
        }
        self.channels = kind.channels().1;
        self.plan.max_div = self.plan.max_div.max(self.div);
        if push_skip {
            self.skips
                .push((self.channels, self.div, origin.to_string()));
        }
    }

    fn resnet(&self, in_channels: usize, out_channels: usize) -> ModuleKind {
        ModuleKind::Resnet {
            in_channels,
            out_channels,
            temb_channels: self.arch.stem.time_embed_dim,
        }
    }

    fn attention(&self, channels: usize) -> ModuleKind {
        ModuleKind::Attention {
            channels,
            heads: self.arch.heads_for(channels),
            cross_attention_dim: self.arch.stem.cross_attention_dim,
            depth: self.arch.stem.transformer_depth,
        }
    }
}

/// Order of (is_resnet, index) entries of a block with `r` ResNets and `a` attentions.
pub fn block_order(interleave: Interleave, r: usize, a: usize) -> Vec<(bool, usize)> {
    let mut order = Vec::with_capacity(r + a);
    match interleave {
        Interleave::Alternate => {
            for i in 0..r.max(a) {
                if i < r {
                    order.push((true, i));
                }
                if i < a {
                    order.push((false, i));
                }
            }
        }
        Interleave::ResnetsFirst => {
            order.extend((0..r).map(|i| (true, i)));
            order.extend((0..a).map(|i| (false, i)));
        }
    }
    order
}

impl UNetArch {
    /// Checks the description and builds its execution plan.
    pub fn plan(&self) -> Result<Plan, ArchError> {
        self.check_static()?;
        let stem = &self.stem;
        let flexible = self.layout == Layout::Flexible;
        let mut w = Walk {
            arch: self,
            plan: Plan {
                modules: Vec::new(),
                steps: Vec::new(),
                max_div: 1,
            },
            div: 1,
            channels: stem.in_channels,
            skips: Vec::new(),
        };
        let eps = stem.norm_eps;
        let att_eps = stem.attention_norm_eps;

        // Stem in.
        let temb = w.add(
            "time_embedding".into(),
            ModuleKind::TimeEmbedding {
                proj_dim: stem.base_channels,
                embed_dim: stem.time_embed_dim,
            },
            Section::StemIn,
            eps,
        );
        w.plan.steps.push(Step {
            module: temb,
            input_div: 1,
            pop_skip: None,
            push_skip: false,
        });
        let conv_in = w.add(
            "conv_in".into(),
            ModuleKind::ConvIn {
                in_channels: stem.in_channels,
                out_channels: stem.base_channels,
            },
            Section::StemIn,
            eps,
        );
        w.run(conv_in, None, true, "conv_in");

        // Down path.
        for (s, d) in self.down.iter().enumerate() {
            let sec = Section::Down(s);
            let in_ch = self.down_in_channels(s);
            let order = block_order(self.interleave, d.resnets, d.attentions);
            for (j, &(is_res, k)) in order.iter().enumerate() {
                let key = if flexible {
                    format!("down_blocks.{s}.modules_list.{j}")
                } else if is_res {
                    format!("down_blocks.{s}.resnets.{k}")
                } else {
                    format!("down_blocks.{s}.attentions.{k}")
                };
                let origin = format!(
                    "down[{s}] {} {k}",
                    if is_res { "resnet" } else { "attention" }
                );
                if is_res {
                    let cin = if k == 0 { in_ch } else { d.out_channels };
                    let kind = w.resnet(cin, d.out_channels);
                    let m = w.add(key, kind, sec, eps);
                    // Flexible: skip right after each ResNet. Diffusers: after the ResNet unless
                    // its attention follows.
                    let push = flexible || d.attentions == 0;
                    w.run(m, None, push, &origin);
                } else {
                    let kind = w.attention(d.out_channels);
                    let m = w.add(key, kind, sec, att_eps);
                    w.run(m, None, !flexible, &origin);
                }
            }
            if d.downsample {
                let m = w.add(
                    format!("down_blocks.{s}.downsamplers.0"),
                    ModuleKind::Downsample {
                        channels: d.out_channels,
                    },
                    sec,
                    eps,
                );
                w.run(
                    m,
                    None,
                    d.keep_downsample_skip,
                    &format!("down[{s}] downsample"),
                );
            }
        }

        // Mid block.
        let mc = self.mid_channels();
        let mid = &self.mid;
        if flexible {
            // Module list: R0, then (A_i, R_{i+1}) in zip-longest order; R0 runs twice.
            let mut entries = vec![(true, 0usize)];
            for i in 0..(mid.resnets - 1).max(mid.attentions) {
                if i < mid.attentions {
                    entries.push((false, i));
                }
                if i < mid.resnets - 1 {
                    entries.push((true, i + 1));
                }
            }
            if self.interleave == Interleave::ResnetsFirst {
                entries.sort_by_key(|&(is_res, _)| !is_res);
            }
            let mut ids = Vec::new();
            for (j, &(is_res, _)) in entries.iter().enumerate() {
                let key = format!("mid_block.modules_list.{j}");
                let (kind, e) = if is_res {
                    (w.resnet(mc, mc), eps)
                } else {
                    (w.attention(mc), att_eps)
                };
                ids.push(w.add(key, kind, Section::Mid, e));
            }
            w.run(ids[0], None, false, "mid");
            for id in ids {
                w.run(id, None, false, "mid");
            }
        } else {
            let r0 = w.resnet(mc, mc);
            let m = w.add("mid_block.resnets.0".into(), r0, Section::Mid, eps);
            w.run(m, None, false, "mid");
            for i in 0..mid.attentions {
                let a = w.attention(mc);
                let ma = w.add(
                    format!("mid_block.attentions.{i}"),
                    a,
                    Section::Mid,
                    att_eps,
                );
                w.run(ma, None, false, "mid");
                let r = w.resnet(mc, mc);
                let mr = w.add(format!("mid_block.resnets.{}", i + 1), r, Section::Mid, eps);
                w.run(mr, None, false, "mid");
            }
        }
        if mid.upsample {
            let m = w.add(
                "mid_block.upsamplers.0".into(),
                ModuleKind::Upsample { channels: mc },
                Section::Mid,
                eps,
            );
            w.run(m, None, false, "mid");
        }

        // Up path.
        for (u, st) in self.up.iter().enumerate() {
            let sec = Section::Up(u);
            let (prev, in_ch, out_ch) = self.up_channels(u);
            let order = block_order(self.interleave, st.resnets, st.attentions);
            for (j, &(is_res, k)) in order.iter().enumerate() {
                let key = if flexible {
                    format!("up_blocks.{u}.modules_list.{j}")
                } else if is_res {
                    format!("up_blocks.{u}.resnets.{k}")
                } else {
                    format!("up_blocks.{u}.attentions.{k}")
                };
                if is_res {
                    let skip_ch = if k == st.resnets - 1 { in_ch } else { out_ch };
                    let cur = if k == 0 { prev } else { out_ch };
                    let field = format!("up[{u}].resnets");
                    let Some((ch, div, origin)) = w.skips.pop() else {
                        return Err(ArchError::new(
                            field,
                            format!(
                                "resnet {k} of up stage {u} needs a skip connection but all \
                                 skips from the down path are used up (the down path keeps {} \
                                 in all)",
                                w.plan.steps.iter().filter(|s| s.push_skip).count()
                            ),
                        ));
                    };
                    if ch != skip_ch || div != w.div {
                        return Err(ArchError::new(
                            field,
                            format!(
                                "resnet {k} of up stage {u} is built for a {skip_ch}-channel skip \
                                 at 1/{} resolution, but the next skip ({origin}) has {ch} \
                                 channels at 1/{div}; an up stage needs one ResNet more than its \
                                 mirrored down stage",
                                w.div
                            ),
                        ));
                    }
                    if w.channels != cur {
                        return Err(ArchError::new(
                            field,
                            format!(
                                "resnet {k} of up stage {u} expects {cur} input channels but \
                                 receives {}",
                                w.channels
                            ),
                        ));
                    }
                    let kind = w.resnet(cur + skip_ch, out_ch);
                    let m = w.add(key, kind, sec, eps);
                    w.run(m, Some(skip_ch), false, "");
                } else {
                    let kind = w.attention(out_ch);
                    let m = w.add(key, kind, sec, att_eps);
                    w.run(m, None, false, "");
                }
            }
            if st.upsample {
                if w.div == 1 {
                    return Err(ArchError::new(
                        format!("up[{u}].upsample"),
                        "upsamples above the latent resolution",
                    ));
                }
                let m = w.add(
                    format!("up_blocks.{u}.upsamplers.0"),
                    ModuleKind::Upsample { channels: out_ch },
                    sec,
                    eps,
                );
                w.run(m, None, false, "");
            }
        }
        if let Some((ch, div, origin)) = w.skips.last() {
            return Err(ArchError::new(
                "up",
                format!(
                    "{} skip connection(s) from the down path are never consumed (the last is \
                     {origin}, {ch} channels at 1/{div}); up stages need one ResNet more than \
                     their mirrored down stages",
                    w.skips.len()
                ),
            ));
        }
        if w.div != 1 {
            return Err(ArchError::new(
                "up",
                format!(
                    "the up path ends at 1/{} of the latent resolution, not at full resolution",
                    w.div
                ),
            ));
        }
        let out = w.add(
            String::new(),
            ModuleKind::ConvOut {
                in_channels: stem.base_channels,
                out_channels: stem.out_channels,
            },
            Section::StemOut,
            eps,
        );
        if w.channels != stem.base_channels {
            return Err(ArchError::new(
                "up",
                format!(
                    "the up path ends with {} channels but conv_out expects base_channels = {}",
                    w.channels, stem.base_channels
                ),
            ));
        }
        w.run(out, None, false, "");
        Ok(w.plan)
    }

    /// Checks that need no walk: counts, divisibility, layout rules.
    fn check_static(&self) -> Result<(), ArchError> {
        let st = &self.stem;
        let positive = [
            ("stem.in_channels", st.in_channels),
            ("stem.out_channels", st.out_channels),
            ("stem.base_channels", st.base_channels),
            ("stem.time_embed_dim", st.time_embed_dim),
            ("stem.cross_attention_dim", st.cross_attention_dim),
            ("stem.norm_groups", st.norm_groups),
            ("stem.transformer_depth", st.transformer_depth),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(ArchError::new(field, "must be at least 1"));
            }
        }
        for (field, v) in [
            ("stem.norm_eps", st.norm_eps),
            ("stem.attention_norm_eps", st.attention_norm_eps),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(ArchError::new(field, format!("must be in (0, 1), got {v}")));
            }
        }
        if !st.freq_shift.is_finite() {
            return Err(ArchError::new("stem.freq_shift", "must be finite"));
        }
        match (st.heads, st.head_dim) {
            (Some(_), Some(_)) => {
                return Err(ArchError::new(
                    "stem.heads",
                    "set either `heads` or `head_dim`, not both",
                ))
            }
            (None, None) => {
                return Err(ArchError::new(
                    "stem.heads",
                    "missing: set `heads` (attention heads) or `head_dim` (channels per head)",
                ))
            }
            (Some(0), _) => return Err(ArchError::new("stem.heads", "must be at least 1")),
            (_, Some(0)) => return Err(ArchError::new("stem.head_dim", "must be at least 1")),
            _ => {}
        }
        if !st.base_channels.is_multiple_of(st.norm_groups) {
            return Err(ArchError::new(
                "stem.base_channels",
                format!(
                    "{} is not divisible by norm_groups = {}",
                    st.base_channels, st.norm_groups
                ),
            ));
        }
        if self.down.is_empty() {
            return Err(ArchError::new("down", "needs at least one down stage"));
        }
        if self.up.len() != self.down.len() {
            return Err(ArchError::new(
                "up",
                format!(
                    "has {} stages but `down` has {}; the U-Net is symmetric",
                    self.up.len(),
                    self.down.len()
                ),
            ));
        }
        let flexible = self.layout == Layout::Flexible;
        if !flexible && self.interleave != Interleave::Alternate {
            return Err(ArchError::new(
                "interleave",
                "the diffusers layout only supports `alternate`",
            ));
        }
        let n = self.down.len();
        for (s, d) in self.down.iter().enumerate() {
            let f = |x: &str| format!("down[{s}].{x}");
            if d.out_channels == 0 {
                return Err(ArchError::new(f("out_channels"), "must be at least 1"));
            }
            self.check_width(&f("out_channels"), d.out_channels, d.attentions > 0)?;
            if d.resnets == 0 {
                return Err(ArchError::new(
                    f("resnets"),
                    "must be at least 1 (a stage starts with a ResNet)",
                ));
            }
            if !flexible {
                if d.attentions != 0 && d.attentions != d.resnets {
                    return Err(ArchError::new(
                        f("attentions"),
                        format!(
                            "the diffusers layout needs 0 or one attention per ResNet ({}), got {}",
                            d.resnets, d.attentions
                        ),
                    ));
                }
                let last = s == n - 1;
                if d.downsample == last {
                    return Err(ArchError::new(
                        f("downsample"),
                        "the diffusers layout downsamples after every stage but the last",
                    ));
                }
                if d.downsample && !d.keep_downsample_skip {
                    return Err(ArchError::new(
                        f("keep_downsample_skip"),
                        "the diffusers layout keeps every downsampled output as a skip",
                    ));
                }
            }
        }
        let mid = &self.mid;
        if mid.resnets == 0 {
            return Err(ArchError::new("mid.resnets", "must be at least 1"));
        }
        self.check_width("mid", self.mid_channels(), mid.attentions > 0)?;
        if !flexible {
            if mid.attentions + 1 != mid.resnets {
                return Err(ArchError::new(
                    "mid.attentions",
                    format!(
                        "the diffusers layout's mid block is ResNet, (attention, ResNet) x n: \
                         attentions must be resnets - 1 = {}, got {}",
                        mid.resnets.saturating_sub(1),
                        mid.attentions
                    ),
                ));
            }
            if mid.upsample {
                return Err(ArchError::new(
                    "mid.upsample",
                    "the diffusers layout's mid block does not upsample",
                ));
            }
        }
        for (u, st) in self.up.iter().enumerate() {
            let f = |x: &str| format!("up[{u}].{x}");
            let (_, _, out) = self.up_channels(u);
            if st.resnets == 0 {
                return Err(ArchError::new(
                    f("resnets"),
                    "must be at least 1 (each ResNet consumes one skip)",
                ));
            }
            self.check_width(&f("attentions"), out, st.attentions > 0)?;
            if !flexible {
                if st.attentions != 0 && st.attentions != st.resnets {
                    return Err(ArchError::new(
                        f("attentions"),
                        format!(
                            "the diffusers layout needs 0 or one attention per ResNet ({}), got {}",
                            st.resnets, st.attentions
                        ),
                    ));
                }
                if st.upsample != (u != n - 1) {
                    return Err(ArchError::new(
                        f("upsample"),
                        "the diffusers layout upsamples after every up stage but the last",
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_width(&self, field: &str, channels: usize, attention: bool) -> Result<(), ArchError> {
        let st = &self.stem;
        if !channels.is_multiple_of(st.norm_groups) {
            return Err(ArchError::new(
                field,
                format!(
                    "{channels} channels are not divisible by norm_groups = {}",
                    st.norm_groups
                ),
            ));
        }
        if attention {
            if let Some(h) = st.heads {
                if !channels.is_multiple_of(h) {
                    return Err(ArchError::new(
                        field,
                        format!("{channels} channels are not divisible by heads = {h}"),
                    ));
                }
            }
            if let Some(d) = st.head_dim {
                if !channels.is_multiple_of(d) {
                    return Err(ArchError::new(
                        field,
                        format!("{channels} channels are not divisible by head_dim = {d}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Validates the description (see [`UNetArch::plan`]).
    pub fn validate(&self) -> Result<(), ArchError> {
        self.plan().map(|_| ())
    }
}
