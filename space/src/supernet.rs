//! Covering architectures ("supernets") of a search space, for weight sharing.
//!
//! Depth is elastic: a candidate keeps the first k ResNets and first m attentions of every
//! block of its covering architecture (matched by role, [`crate::role`]), and may have fewer
//! stages (the covering architecture has the space's largest stage count; a shallower
//! candidate shares every stage it has). Widths are not elastic: slicing channels is not exact
//! (a GroupNorm over fewer channels with the same group count normalises other channel sets,
//! a ResNet's first convolution reads `cat([h, skip])`), so every width setting is a topology
//! of its own — few-shot NAS (Zhao et al. 2021) — and so is every layout and block order. A
//! shallower candidate joins the deeper topology only when the space allows its last width at
//! the missing stages (the mid block then has the same width in both); otherwise its stage
//! count is a topology of its own.

use serde::{Deserialize, Serialize};

use crate::arch::{Interleave, Layout, UNetArch};
use crate::rng::Rng;
use crate::space::{Genome, SearchSpace, StageGene};

/// How the random sub-networks of a supernet training step are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubnetSampling {
    /// Uniformly among the topology's candidates (BigNAS's sandwich rule; the default).
    #[default]
    Uniform,
    /// Every block's ResNet and attention counts (and the mid block's) drawn independently
    /// with probability proportional to their rank among the allowed counts (1 for the
    /// smallest): a block allowing 0–6 attentions keeps 6 with probability 7/28 instead of 1/7,
    /// so the deepest layers of the supernet are trained in more sub-networks.
    TowardsLargest,
}

impl SubnetSampling {
    /// Whether this is the default (kept out of settings hashes made before it existed).
    pub fn is_uniform(&self) -> bool {
        *self == SubnetSampling::Uniform
    }
}

/// What two candidates must share to run on one supernet.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Topology {
    /// Layout.
    pub layout: Layout,
    /// Block order.
    pub interleave: Interleave,
    /// Stage widths of the covering architecture (its stage count is their number).
    pub widths: Vec<usize>,
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let layout = match self.layout {
            Layout::Diffusers => "diffusers",
            Layout::Flexible => "flexible",
        };
        let order = match self.interleave {
            Interleave::Alternate => "",
            Interleave::ResnetsFirst => "-resnets-first",
        };
        let w: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        write!(f, "{layout}{order}-{}", w.join("-"))
    }
}

impl SearchSpace {
    /// The topology (supernet) a genome of this space belongs to.
    pub fn topology(&self, g: &Genome) -> Topology {
        let mut widths: Vec<usize> = g.stages.iter().map(|s| s.out_channels).collect();
        let last = *widths.last().expect("at least one stage");
        let deepest = self
            .knobs
            .stages
            .iter()
            .copied()
            .max()
            .unwrap_or(widths.len());
        let extendable = (widths.len()..deepest)
            .all(|s| s < self.stage.len() && self.stage[s].out_channels.contains(&last));
        if extendable {
            widths.resize(deepest, last);
        }
        Topology {
            layout: g.layout,
            interleave: g.interleave,
            widths,
        }
    }

    /// The covering architecture of a topology: at every stage the most ResNets and
    /// attentions the space allows (diffusers layout: one attention per ResNet where the space
    /// allows attentions at all), the largest mid block.
    pub fn supernet_arch(&self, t: &Topology) -> UNetArch {
        let stages = t
            .widths
            .iter()
            .enumerate()
            .map(|(s, &w)| {
                let combos = self.stage_combos(t.layout, s);
                let r = combos.iter().map(|c| c.0).max().unwrap_or(1);
                let (da, ua) = (
                    combos.iter().map(|c| c.1).max().unwrap_or(0),
                    combos.iter().map(|c| c.2).max().unwrap_or(0),
                );
                let (da, ua) = match t.layout {
                    Layout::Flexible => (da, ua),
                    Layout::Diffusers => {
                        (if da > 0 { r } else { 0 }, if ua > 0 { r + 1 } else { 0 })
                    }
                };
                StageGene {
                    out_channels: w,
                    down_resnets: r,
                    down_attentions: da,
                    up_attentions: ua,
                }
            })
            .collect();
        let (mid_resnets, mid_attentions) = self.mid_extreme(t.layout, true);
        let mut arch = self.decode(&Genome {
            layout: t.layout,
            interleave: t.interleave,
            stages,
            mid_resnets,
            mid_attentions,
            sampling_steps: None,
        });
        arch.name = format!("supernet-{t}");
        arch
    }

    /// The largest (`max`) or smallest mid block (ResNets, attentions) of `layout`: the
    /// diffusers layout's is always R, A, R.
    fn mid_extreme(&self, layout: Layout, max: bool) -> (usize, usize) {
        let pick = |v: &[usize], default: usize| {
            let it = v.iter().copied();
            if max { it.max() } else { it.min() }.unwrap_or(default)
        };
        match layout {
            Layout::Diffusers => (2, 1),
            Layout::Flexible => (
                pick(&self.knobs.mid_resnets, 1),
                pick(&self.knobs.mid_attentions, 0),
            ),
        }
    }

    /// The smallest candidate of a topology: the fewest stages whose candidates belong to it,
    /// the fewest ResNets and attentions the space allows at every stage, the smallest mid
    /// block (the "smallest" of the sandwich rule).
    pub fn smallest_arch(&self, t: &Topology) -> Option<UNetArch> {
        let mut stage_counts: Vec<usize> = self.knobs.stages.clone();
        stage_counts.sort_unstable();
        for n in stage_counts {
            if n > t.widths.len() {
                continue;
            }
            let stages: Option<Vec<StageGene>> = (0..n)
                .map(|s| {
                    let combos = self.stage_combos(t.layout, s);
                    combos.iter().min().map(|&(r, da, ua)| StageGene {
                        out_channels: t.widths[s],
                        down_resnets: r,
                        down_attentions: da,
                        up_attentions: ua,
                    })
                })
                .collect();
            let (mid_resnets, mid_attentions) = self.mid_extreme(t.layout, false);
            let g = Genome {
                layout: t.layout,
                interleave: t.interleave,
                stages: stages?,
                mid_resnets,
                mid_attentions,
                sampling_steps: None,
            };
            if self.is_valid(&g) && &self.topology(&g) == t {
                return Some(self.decode(&g));
            }
        }
        None
    }

    /// A candidate of topology `t`, uniformly among the space's candidates of that topology
    /// (sampled from the space restricted to the topology's layout, block order and widths,
    /// rejecting the few of another topology); `None` after `tries` misses.
    pub fn sample_in(&self, t: &Topology, rng: &mut Rng, tries: usize) -> Option<UNetArch> {
        self.sample_in_with(t, rng, tries, SubnetSampling::Uniform)
    }

    /// [`Self::sample_in`] with the candidates drawn by `sampling` (the stage count still
    /// in proportion to the number of candidates of each).
    pub fn sample_in_with(
        &self,
        t: &Topology,
        rng: &mut Rng,
        tries: usize,
        sampling: SubnetSampling,
    ) -> Option<UNetArch> {
        let mut sub = self.clone();
        sub.knobs.layouts = vec![t.layout];
        sub.knobs.interleave = vec![t.interleave];
        sub.knobs.stages.retain(|&n| n <= t.widths.len());
        for (s, &w) in t.widths.iter().enumerate() {
            sub.stage.get_mut(s)?.out_channels = vec![w];
        }
        (0..tries).find_map(|_| {
            let g = sub.sample_with(rng, sampling).ok()?;
            (&self.topology(&g) == t).then(|| self.decode(&g))
        })
    }

    /// Every topology of the space, sorted.
    pub fn topologies(&self) -> Vec<Topology> {
        let mut out = std::collections::BTreeSet::new();
        for &layout in &self.knobs.layouts {
            let orders = match layout {
                Layout::Diffusers => vec![Interleave::Alternate],
                Layout::Flexible => self.knobs.interleave.clone(),
            };
            for &interleave in &orders {
                for &n in &self.knobs.stages {
                    let mut widths = vec![Vec::new()];
                    for s in 0..n.min(self.stage.len()) {
                        widths = widths
                            .into_iter()
                            .flat_map(|p: Vec<usize>| {
                                self.stage[s].out_channels.iter().map(move |&w| {
                                    let mut q = p.clone();
                                    q.push(w);
                                    q
                                })
                            })
                            .collect();
                    }
                    for w in widths {
                        let stages = w
                            .iter()
                            .map(|&out_channels| StageGene {
                                out_channels,
                                down_resnets: 1,
                                down_attentions: 0,
                                up_attentions: 0,
                            })
                            .collect();
                        let g = Genome {
                            layout,
                            interleave,
                            stages,
                            mid_resnets: 1,
                            mid_attentions: 0,
                            sampling_steps: None,
                        };
                        out.insert(self.topology(&g));
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::role::RoleMap;

    #[test]
    fn every_sampled_candidate_is_a_subnetwork_of_its_supernet() {
        let space = SearchSpace::load("tiny").unwrap();
        let topologies = space.topologies();
        let mut rng = Rng::seed(7);
        let mut three_stage = 0;
        for _ in 0..300 {
            let g = space.sample(&mut rng).unwrap();
            let t = space.topology(&g);
            assert!(topologies.contains(&t), "{t}");
            let arch = space.decode(&g);
            let sup = space.supernet_arch(&t);
            sup.validate().unwrap();
            let map = RoleMap::new(&arch, &sup).unwrap();
            map.check_subnetwork(&arch, &sup)
                .unwrap_or_else(|e| panic!("{t}: {e}"));
            three_stage += usize::from(arch.stages() == 3);
        }
        assert!(
            three_stage > 0,
            "3-stage candidates share the 4-stage supernets"
        );
    }

    #[test]
    fn tiny_depth_has_two_topologies_and_holds_both_presets() {
        let space = SearchSpace::load("tiny-depth").unwrap();
        let names: Vec<String> = space.topologies().iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["diffusers-32-64-64-64", "flexible-32-64-64-64"]);
        for name in ["tiny", "tiny-nas"] {
            let arch = crate::presets::preset(name);
            let g = space.encode(&arch).unwrap_or_else(|| panic!("{name}"));
            let t = space.topology(&g);
            let sup = space.supernet_arch(&t);
            RoleMap::new(&arch, &sup)
                .unwrap()
                .check_subnetwork(&arch, &sup)
                .unwrap();
        }
    }

    #[test]
    fn another_layout_is_not_a_subnetwork() {
        // A diffusers-layout candidate whose modules all have counterparts in the flexible
        // supernet (one was found in a search: it ran there with its own wiring) is refused.
        let space = SearchSpace::load("tiny-depth").unwrap();
        let flexible = space
            .topologies()
            .into_iter()
            .find(|t| t.to_string().starts_with("flexible"))
            .unwrap();
        let sup = space.supernet_arch(&flexible);
        // That candidate: down 2R0A 1R1A 2R2A 1R0A | mid 2R1A | up 2R0A 3R0A 2R2A 3R0A.
        let mut arch = crate::presets::preset("tiny");
        for (d, (r, a)) in arch.down.iter_mut().zip([(2, 0), (1, 1), (2, 2), (1, 0)]) {
            (d.resnets, d.attentions) = (r, a);
        }
        for (u, (r, a)) in arch.up.iter_mut().zip([(2, 0), (3, 0), (2, 2), (3, 0)]) {
            (u.resnets, u.attentions) = (r, a);
        }
        (arch.mid.resnets, arch.mid.attentions) = (2, 1);
        arch.validate().unwrap();
        let map = RoleMap::new(&arch, &sup).unwrap();
        let err = map.check_subnetwork(&arch, &sup).unwrap_err().to_string();
        assert!(err.contains("layout"), "{err}");
    }

    #[test]
    fn smallest_and_sampled_candidates_of_a_topology() {
        let space = SearchSpace::load("tiny").unwrap();
        let mut rng = Rng::seed(3);
        for t in space.topologies() {
            let small = space.smallest_arch(&t).unwrap();
            // 3-stage candidates join the 4-stage topology that repeats their last width.
            let stages = if t.widths[3] == t.widths[2] { 3 } else { 4 };
            assert_eq!(small.stages(), stages, "{t}");
            assert!(small
                .down
                .iter()
                .all(|d| d.resnets == 1 && d.attentions == 0));
            let sup = space.supernet_arch(&t);
            RoleMap::new(&small, &sup)
                .unwrap()
                .check_subnetwork(&small, &sup)
                .unwrap();
            let arch = space.sample_in(&t, &mut rng, 1000).unwrap();
            assert_eq!(space.topology(&space.encode(&arch).unwrap()), t);
        }
    }

    #[test]
    fn tiny_space_topologies_are_layouts_times_width_settings() {
        let space = SearchSpace::load("tiny").unwrap();
        // 2 layouts x (1 x 2 x 2 x 2) width settings of 4 stages; 3-stage candidates extend
        // into them (every stage-2 width is allowed at stage 3).
        assert_eq!(space.topologies().len(), 16);
    }
}
