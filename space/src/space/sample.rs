//! Counting and sampling a space's genomes (uniformly, or towards the largest for a
//! supernet's sandwich rule), and the constraint and validity checks of a genome.

#[allow(unused_imports)]
use super::*;

impl SearchSpace {
    pub(super) fn stage_count(&self, layout: Layout, s: usize) -> u128 {
        self.stage[s].out_channels.len() as u128 * self.stage_combos(layout, s).len() as u128
    }

    pub(super) fn globals_count(&self, layout: Layout) -> u128 {
        match layout {
            Layout::Diffusers => 1,
            Layout::Flexible => {
                let k = &self.knobs;
                (k.interleave.len() * k.mid_resnets.len() * k.mid_attentions.len()) as u128
            }
        }
    }

    /// Count of (stages, layout) sub-spaces, in knob order.
    pub(super) fn family_counts(&self) -> Vec<(usize, Layout, u128)> {
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
        // Drawn last and only when the knob exists: spaces without it sample as before.
        let sampling_steps = (!k.sampling_steps.is_empty()).then(|| *rng.pick(&k.sampling_steps));
        Some(Genome {
            layout,
            interleave,
            stages,
            mid_resnets,
            mid_attentions,
            sampling_steps,
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
        // No step count is allowed everywhere (a network not yet given one: a reference, a
        // supernet's extremes); a step count only where the space offers it.
        if g.sampling_steps
            .is_some_and(|v| !k.sampling_steps.contains(&v))
        {
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
