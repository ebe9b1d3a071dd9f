//! Genomes and architectures: decoding, encoding, the knobs of a genome and the moves of a
//! search (alternatives, mutation, crossover).

#[allow(unused_imports)]
use super::*;

impl SearchSpace {
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
            sampling_steps: g.sampling_steps,
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
            sampling_steps: arch.sampling_steps,
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
        if self.knobs.sampling_steps.len() > 1 {
            out.push(Knob::SamplingSteps);
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
            Knob::SamplingSteps => g.sampling_steps.unwrap_or(0),
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
            Knob::SamplingSteps => {
                for &v in &k.sampling_steps {
                    let mut c = g.clone();
                    c.sampling_steps = Some(v);
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
    pub(super) fn first_gene(&self, layout: Layout, s: usize) -> Option<StageGene> {
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
    /// other knob from `a` or `b` at random where `b` has it and the result stays valid (the
    /// sampling steps, when the space has them, last, so spaces without them draw as before).
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
        if !self.knobs.sampling_steps.is_empty() && rng.coin() {
            c.sampling_steps = b.sampling_steps;
        }
        debug_assert!(self.is_valid(&c));
        c
    }
}
