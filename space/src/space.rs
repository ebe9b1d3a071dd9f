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
        space.check().map_err(|(f, m)| src.invalid_at(&f, m))?;
        Ok(space)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: String| Err((f.to_string(), m));
        let k = &self.knobs;
        for (f, empty) in [
            ("knobs.stages", k.stages.is_empty()),
            ("knobs.layouts", k.layouts.is_empty()),
            ("knobs.interleave", k.interleave.is_empty()),
            ("knobs.mid_resnets", k.mid_resnets.is_empty()),
            ("knobs.mid_attentions", k.mid_attentions.is_empty()),
        ] {
            if empty {
                return err(f, "needs at least one value".into());
            }
        }
        for (f, list) in [
            ("knobs.stages", &k.stages),
            ("knobs.mid_resnets", &k.mid_resnets),
            ("knobs.mid_attentions", &k.mid_attentions),
        ] {
            if has_duplicates(list) {
                return err(f, "lists a value twice".into());
            }
        }
        if k.stages.contains(&0) {
            return err("knobs.stages", "stage counts must be at least 1".into());
        }
        if k.mid_resnets.contains(&0) {
            return err("knobs.mid_resnets", "must be at least 1".into());
        }
        let max_stages = *k.stages.iter().max().unwrap_or(&0);
        if self.stage.len() < max_stages {
            return err(
                "stage",
                format!(
                    "knobs.stages allows {max_stages} stages but only {} [[stage]] entries are given",
                    self.stage.len()
                ),
            );
        }
        for (s, o) in self.stage.iter().enumerate() {
            let f = |x: &str| format!("stage[{s}].{x}");
            for (name, list) in [
                ("out_channels", &o.out_channels),
                ("down_resnets", &o.down_resnets),
                ("down_attentions", &o.down_attentions),
                ("up_attentions", &o.up_attentions),
            ] {
                if list.is_empty() {
                    return err(&f(name), "needs at least one value".into());
                }
                if has_duplicates(list) {
                    return err(&f(name), "lists a value twice".into());
                }
            }
            if o.down_resnets.contains(&0) {
                return err(&f("down_resnets"), "must be at least 1".into());
            }
            for &c in &o.out_channels {
                if c == 0 || c % self.stem.norm_groups != 0 {
                    return err(
                        &f("out_channels"),
                        format!(
                            "{c} is not a positive multiple of stem.norm_groups = {}",
                            self.stem.norm_groups
                        ),
                    );
                }
                let heads_ok = match (self.stem.heads, self.stem.head_dim) {
                    (Some(h), _) => h > 0 && c % h == 0,
                    (None, Some(d)) => d > 0 && c % d == 0,
                    _ => true,
                };
                if !heads_ok {
                    return err(
                        &f("out_channels"),
                        format!("{c} is not divisible by the attention heads (or head_dim)"),
                    );
                }
            }
        }
        // The stem itself is checked by building the first architecture of the space.
        let mut rng = Rng::seed(0);
        let g = self.sample_structural(&mut rng).ok_or_else(|| {
            (
                "knobs".to_string(),
                "the space has no valid architecture".into(),
            )
        })?;
        self.decode(&g)
            .validate()
            .map_err(|e| (format!("stem ({})", e.field), e.message))?;
        if self.constraints.latent == 0 || self.constraints.batch == 0 {
            return err(
                "constraints.latent",
                "latent and batch must be at least 1".into(),
            );
        }
        Ok(())
    }

    fn stage_valid(&self, layout: Layout, s: usize, g: &StageGene) -> bool {
        let o = &self.stage[s];
        if !o.out_channels.contains(&g.out_channels) || !o.down_resnets.contains(&g.down_resnets) {
            return false;
        }
        if !o.down_attentions.contains(&g.down_attentions)
            || !o.up_attentions.contains(&g.up_attentions)
        {
            return false;
        }
        match layout {
            Layout::Flexible => true,
            Layout::Diffusers => {
                (g.down_attentions == 0 || g.down_attentions == g.down_resnets)
                    && (g.up_attentions == 0 || g.up_attentions == g.down_resnets + 1)
            }
        }
    }

    /// Valid (down_resnets, down_attentions, up_attentions) triples of stage `s` under `layout`.
    pub(crate) fn stage_combos(&self, layout: Layout, s: usize) -> Vec<(usize, usize, usize)> {
        let o = &self.stage[s];
        let mut out = Vec::new();
        for &r in &o.down_resnets {
            for &da in &o.down_attentions {
                for &ua in &o.up_attentions {
                    let g = StageGene {
                        out_channels: o.out_channels[0],
                        down_resnets: r,
                        down_attentions: da,
                        up_attentions: ua,
                    };
                    if self.stage_valid(layout, s, &g) {
                        out.push((r, da, ua));
                    }
                }
            }
        }
        out
    }

    fn stage_count(&self, layout: Layout, s: usize) -> u128 {
        self.stage[s].out_channels.len() as u128 * self.stage_combos(layout, s).len() as u128
    }

    fn globals_count(&self, layout: Layout) -> u128 {
        match layout {
            Layout::Diffusers => 1,
            Layout::Flexible => {
                let k = &self.knobs;
                (k.interleave.len() * k.mid_resnets.len() * k.mid_attentions.len()) as u128
            }
        }
    }

    /// Count of (stages, layout) sub-spaces, in knob order.
    fn family_counts(&self) -> Vec<(usize, Layout, u128)> {
        let mut out = Vec::new();
        for &n in &self.knobs.stages {
            for &layout in &self.knobs.layouts {
                let mut c = self.globals_count(layout);
                for s in 0..n {
                    c = c.saturating_mul(self.stage_count(layout, s));
                }
                out.push((n, layout, c));
            }
        }
        out
    }

    /// Number of distinct valid architectures (constraints not applied), exact.
    pub fn size(&self) -> u128 {
        self.family_counts()
            .iter()
            .fold(0u128, |acc, f| acc.saturating_add(f.2))
    }

    /// A uniformly random valid genome, constraints not applied; `None` for an empty space.
    pub fn sample_structural(&self, rng: &mut Rng) -> Option<Genome> {
        self.sample_structural_with(rng, SubnetSampling::Uniform)
    }

    /// A random valid genome drawn by `sampling` (constraints not applied); `None` for an
    /// empty space. [`SubnetSampling::Uniform`] is [`Self::sample_structural`], draw for draw.
    pub fn sample_structural_with(
        &self,
        rng: &mut Rng,
        sampling: SubnetSampling,
    ) -> Option<Genome> {
        let families = self.family_counts();
        let counts: Vec<u128> = families.iter().map(|f| f.2).collect();
        if counts.iter().sum::<u128>() == 0 {
            return None;
        }
        let (n, layout, _) = families[pick_weighted(rng, &counts)];
        let mut stages = Vec::with_capacity(n);
        for s in 0..n {
            let combos = self.stage_combos(layout, s);
            let (r, da, ua) = match sampling {
                SubnetSampling::Uniform => *rng.pick(&combos),
                SubnetSampling::TowardsLargest => {
                    let o = &self.stage[s];
                    let w: Vec<u128> = combos
                        .iter()
                        .map(|&(r, da, ua)| {
                            rank_weight(&o.down_resnets, r)
                                * rank_weight(&o.down_attentions, da)
                                * rank_weight(&o.up_attentions, ua)
                        })
                        .collect();
                    combos[pick_weighted(rng, &w)]
                }
            };
            stages.push(StageGene {
                out_channels: *rng.pick(&self.stage[s].out_channels),
                down_resnets: r,
                down_attentions: da,
                up_attentions: ua,
            });
        }
        let k = &self.knobs;
        let (interleave, mid_resnets, mid_attentions) = match layout {
            Layout::Flexible => {
                let interleave = *rng.pick(&k.interleave);
                let mut count = |vals: &[usize]| match sampling {
                    SubnetSampling::Uniform => *rng.pick(vals),
                    SubnetSampling::TowardsLargest => {
                        let w: Vec<u128> = vals.iter().map(|&v| rank_weight(vals, v)).collect();
                        vals[pick_weighted(rng, &w)]
                    }
                };
                let mid_resnets = count(&k.mid_resnets);
                (interleave, mid_resnets, count(&k.mid_attentions))
            }
            Layout::Diffusers => (Interleave::Alternate, DIFFUSERS_MID.0, DIFFUSERS_MID.1),
        };
        Some(Genome {
            layout,
            interleave,
            stages,
            mid_resnets,
            mid_attentions,
        })
    }

    /// A uniformly random genome that also meets the constraints (rejection sampling, at most
    /// `10_000` tries).
    pub fn sample(&self, rng: &mut Rng) -> Result<Genome, SpaceError> {
        self.sample_with(rng, SubnetSampling::Uniform)
    }

    /// [`Self::sample`] with the genome drawn by `sampling`.
    pub fn sample_with(
        &self,
        rng: &mut Rng,
        sampling: SubnetSampling,
    ) -> Result<Genome, SpaceError> {
        for _ in 0..10_000 {
            let g = self
                .sample_structural_with(rng, sampling)
                .ok_or_else(|| SpaceError::Query(format!("space `{}` is empty", self.name)))?;
            if self.meets_constraints(&g) {
                return Ok(g);
            }
        }
        Err(SpaceError::Query(format!(
            "no architecture of space `{}` met the constraints in 10000 samples; loosen \
             constraints.max_params / max_macs",
            self.name
        )))
    }

    /// Whether the decoded architecture meets `constraints`.
    pub fn meets_constraints(&self, g: &Genome) -> bool {
        let c = &self.constraints;
        if c.max_params.is_none() && c.max_macs.is_none() {
            return true;
        }
        let Ok(plan) = self.decode(g).plan() else {
            return false;
        };
        let q = CostQuery {
            height: c.latent,
            width: c.latent,
            batch: c.batch,
            text_len: c.text_len,
        };
        let Ok(cost) = plan.cost(&q) else {
            return false;
        };
        c.max_params.is_none_or(|m| cost.params <= m) && c.max_macs.is_none_or(|m| cost.macs <= m)
    }

    /// Whether `g` is a point of the structural space.
    pub fn is_valid(&self, g: &Genome) -> bool {
        let k = &self.knobs;
        let n = g.stages.len();
        if !k.stages.contains(&n) || !k.layouts.contains(&g.layout) || n > self.stage.len() {
            return false;
        }
        if !g
            .stages
            .iter()
            .enumerate()
            .all(|(s, sg)| self.stage_valid(g.layout, s, sg))
        {
            return false;
        }
        match g.layout {
            Layout::Diffusers => {
                g.interleave == Interleave::Alternate
                    && (g.mid_resnets, g.mid_attentions) == DIFFUSERS_MID
            }
            Layout::Flexible => {
                k.interleave.contains(&g.interleave)
                    && k.mid_resnets.contains(&g.mid_resnets)
                    && k.mid_attentions.contains(&g.mid_attentions)
            }
        }
    }

    /// The architecture a genome stands for.
    pub fn decode(&self, g: &Genome) -> UNetArch {
        let n = g.stages.len();
        let flexible = g.layout == Layout::Flexible;
        let down = g
            .stages
            .iter()
            .enumerate()
            .map(|(s, sg)| DownStage {
                out_channels: sg.out_channels,
                resnets: sg.down_resnets,
                attentions: sg.down_attentions,
                downsample: flexible || s + 1 < n,
                keep_downsample_skip: !flexible || s + 1 < n,
            })
            .collect();
        let up = (0..n)
            .map(|u| {
                let sg = &g.stages[n - 1 - u];
                UpStage {
                    resnets: sg.down_resnets + 1,
                    attentions: sg.up_attentions,
                    upsample: u + 1 < n,
                }
            })
            .collect();
        UNetArch {
            name: String::new(),
            layout: g.layout,
            interleave: g.interleave,
            stem: self.stem.clone(),
            down,
            mid: MidBlock {
                resnets: g.mid_resnets,
                attentions: g.mid_attentions,
                upsample: flexible,
            },
            up,
        }
    }

    /// The genome of `arch` if the architecture belongs to this space (stem included).
    pub fn encode(&self, arch: &UNetArch) -> Option<Genome> {
        let n = arch.down.len();
        if arch.up.len() != n {
            return None;
        }
        let stages = (0..n)
            .map(|s| StageGene {
                out_channels: arch.down[s].out_channels,
                down_resnets: arch.down[s].resnets,
                down_attentions: arch.down[s].attentions,
                up_attentions: arch.up[n - 1 - s].attentions,
            })
            .collect();
        let g = Genome {
            layout: arch.layout,
            interleave: arch.interleave,
            stages,
            mid_resnets: arch.mid.resnets,
            mid_attentions: arch.mid.attentions,
        };
        let mut probe = self.decode(&g);
        probe.name.clone_from(&arch.name);
        (self.is_valid(&g) && probe == *arch).then_some(g)
    }

    /// Knobs that exist for `g` (stage knobs for its stages; mid and interleave knobs under the
    /// flexible layout; global knobs with more than one option).
    pub fn knobs(&self, g: &Genome) -> Vec<Knob> {
        let mut out = Vec::new();
        if self.knobs.stages.len() > 1 {
            out.push(Knob::Stages);
        }
        if self.knobs.layouts.len() > 1 {
            out.push(Knob::Layout);
        }
        if g.layout == Layout::Flexible {
            out.extend([Knob::Interleave, Knob::MidResnets, Knob::MidAttentions]);
        }
        for s in 0..g.stages.len() {
            out.extend([
                Knob::Width(s),
                Knob::DownResnets(s),
                Knob::DownAttentions(s),
                Knob::UpAttentions(s),
            ]);
        }
        out
    }

    /// The value of a knob in `g`, comparable across genomes of the same layout (attention knobs
    /// under the diffusers layout are switches: 0 or 1).
    pub fn knob_value(&self, g: &Genome, k: Knob) -> usize {
        let diffusers = g.layout == Layout::Diffusers;
        match k {
            Knob::Stages => g.stages.len(),
            Knob::Layout => g.layout as usize,
            Knob::Interleave => g.interleave as usize,
            Knob::Width(s) => g.stages[s].out_channels,
            Knob::DownResnets(s) => g.stages[s].down_resnets,
            Knob::DownAttentions(s) if diffusers => (g.stages[s].down_attentions > 0) as usize,
            Knob::DownAttentions(s) => g.stages[s].down_attentions,
            Knob::UpAttentions(s) if diffusers => (g.stages[s].up_attentions > 0) as usize,
            Knob::UpAttentions(s) => g.stages[s].up_attentions,
            Knob::MidResnets => g.mid_resnets,
            Knob::MidAttentions => g.mid_attentions,
        }
    }

    /// Knobs present in both genomes, with the same meaning, whose values differ. Knobs that
    /// appear or disappear with a stage-count or layout change are not counted; attention knobs
    /// are compared only between genomes of the same layout.
    pub fn changed_knobs(&self, a: &Genome, b: &Genome) -> Vec<Knob> {
        let kb = self.knobs(b);
        self.knobs(a)
            .into_iter()
            .filter(|k| kb.contains(k))
            .filter(|k| {
                let attention = matches!(k, Knob::DownAttentions(_) | Knob::UpAttentions(_));
                !(attention && a.layout != b.layout)
            })
            .filter(|&k| self.knob_value(a, k) != self.knob_value(b, k))
            .collect()
    }

    /// Every valid genome obtained from `g` by changing `knob` alone.
    pub fn alternatives(&self, g: &Genome, knob: Knob) -> Vec<Genome> {
        let k = &self.knobs;
        let mut out = Vec::new();
        let mut push = |c: Genome| {
            if self.is_valid(&c) && c != *g {
                out.push(c);
            }
        };
        match knob {
            Knob::Stages => {
                for &n in &k.stages {
                    if n == g.stages.len() || n > self.stage.len() {
                        continue;
                    }
                    let mut c = g.clone();
                    c.stages.truncate(n);
                    for s in c.stages.len()..n {
                        let Some(first) = self.first_gene(g.layout, s) else {
                            break;
                        };
                        c.stages.push(first);
                    }
                    push(c);
                }
            }
            Knob::Layout => {
                for &l in &k.layouts {
                    if l == g.layout {
                        continue;
                    }
                    let mut c = g.clone();
                    c.layout = l;
                    match l {
                        Layout::Diffusers => {
                            c.interleave = Interleave::Alternate;
                            (c.mid_resnets, c.mid_attentions) = DIFFUSERS_MID;
                        }
                        Layout::Flexible => {
                            // Mid knobs become active: keep the diffusers mid where allowed.
                            if !k.interleave.contains(&c.interleave) {
                                c.interleave = k.interleave[0];
                            }
                            if !k.mid_resnets.contains(&c.mid_resnets) {
                                c.mid_resnets = k.mid_resnets[0];
                            }
                            if !k.mid_attentions.contains(&c.mid_attentions) {
                                c.mid_attentions = k.mid_attentions[0];
                            }
                        }
                    }
                    push(c);
                }
            }
            Knob::Interleave => {
                for &v in &k.interleave {
                    let mut c = g.clone();
                    c.interleave = v;
                    push(c);
                }
            }
            Knob::MidResnets => {
                for &v in &k.mid_resnets {
                    let mut c = g.clone();
                    c.mid_resnets = v;
                    push(c);
                }
            }
            Knob::MidAttentions => {
                for &v in &k.mid_attentions {
                    let mut c = g.clone();
                    c.mid_attentions = v;
                    push(c);
                }
            }
            Knob::Width(s) => {
                for &v in &self.stage[s].out_channels {
                    let mut c = g.clone();
                    c.stages[s].out_channels = v;
                    push(c);
                }
            }
            Knob::DownResnets(s) => {
                for &v in &self.stage[s].down_resnets {
                    let mut c = g.clone();
                    let st = &mut c.stages[s];
                    st.down_resnets = v;
                    if g.layout == Layout::Diffusers {
                        // Attention switches stay as they are.
                        if st.down_attentions > 0 {
                            st.down_attentions = v;
                        }
                        if st.up_attentions > 0 {
                            st.up_attentions = v + 1;
                        }
                    }
                    push(c);
                }
            }
            Knob::DownAttentions(s) | Knob::UpAttentions(s) => {
                let up = matches!(knob, Knob::UpAttentions(_));
                let opts = if up {
                    &self.stage[s].up_attentions
                } else {
                    &self.stage[s].down_attentions
                };
                for &v in opts {
                    let mut c = g.clone();
                    if up {
                        c.stages[s].up_attentions = v;
                    } else {
                        c.stages[s].down_attentions = v;
                    }
                    push(c);
                }
            }
        }
        out
    }

    /// The first valid gene of stage `s` under `layout` (used when a stage is added).
    fn first_gene(&self, layout: Layout, s: usize) -> Option<StageGene> {
        let (r, da, ua) = *self.stage_combos(layout, s).first()?;
        Some(StageGene {
            out_channels: self.stage[s].out_channels[0],
            down_resnets: r,
            down_attentions: da,
            up_attentions: ua,
        })
    }

    /// One mutation: a knob chosen uniformly among those that can change, set to a uniformly
    /// chosen different valid value. Returns the child and the knob; `None` if nothing can
    /// change (a one-point space).
    pub fn mutate(&self, g: &Genome, rng: &mut Rng) -> Option<(Genome, Knob)> {
        let options: Vec<(Knob, Vec<Genome>)> = self
            .knobs(g)
            .into_iter()
            .map(|k| (k, self.alternatives(g, k)))
            .filter(|(_, alts)| !alts.is_empty())
            .collect();
        if options.is_empty() {
            return None;
        }
        let (knob, alts) = &options[rng.below(options.len())];
        Some((alts[rng.below(alts.len())].clone(), *knob))
    }

    /// Uniform crossover: the child takes stage count, layout and order from `a`, and each
    /// other knob from `a` or `b` at random where `b` has it and the result stays valid.
    pub fn crossover(&self, a: &Genome, b: &Genome, rng: &mut Rng) -> Genome {
        let mut c = a.clone();
        for s in 0..c.stages.len().min(b.stages.len()) {
            let from_b = b.stages[s].clone();
            let mut trial = c.stages[s].clone();
            if rng.coin() {
                trial.out_channels = from_b.out_channels;
            }
            if rng.coin() {
                trial.down_resnets = from_b.down_resnets;
            }
            if rng.coin() {
                trial.down_attentions = from_b.down_attentions;
            }
            if rng.coin() {
                trial.up_attentions = from_b.up_attentions;
            }
            if a.layout == Layout::Diffusers {
                // Keep attention switches consistent with the chosen ResNet count.
                if trial.down_attentions > 0 {
                    trial.down_attentions = trial.down_resnets;
                }
                if trial.up_attentions > 0 {
                    trial.up_attentions = trial.down_resnets + 1;
                }
            }
            if self.stage_valid(c.layout, s, &trial) {
                c.stages[s] = trial;
            }
        }
        if a.layout == Layout::Flexible && b.layout == Layout::Flexible {
            if rng.coin() {
                c.mid_resnets = b.mid_resnets;
            }
            if rng.coin() {
                c.mid_attentions = b.mid_attentions;
            }
        }
        debug_assert!(self.is_valid(&c));
        c
    }
}

fn has_duplicates(v: &[usize]) -> bool {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.windows(2).any(|w| w[0] == w[1])
}

/// Weight of `v` among the allowed values `vals` under [`SubnetSampling::TowardsLargest`]:
/// its rank among them, from 1 for the smallest.
fn rank_weight(vals: &[usize], v: usize) -> u128 {
    1 + vals.iter().filter(|&&x| x < v).count() as u128
}

/// An index drawn with probability proportional to `w` (their sum not 0): one draw of
/// `below_u128(sum)`, then the first index whose running sum exceeds it.
fn pick_weighted(rng: &mut Rng, w: &[u128]) -> usize {
    let mut x = rng.below_u128(w.iter().sum());
    for (i, &wi) in w.iter().enumerate() {
        if x < wi {
            return i;
        }
        x -= wi;
    }
    unreachable!("x < sum of the weights")
}
