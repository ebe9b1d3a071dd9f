//! Aging evolution (Real et al. 2019): the first P trials are random; later, the population is
//! the P most recent usable visible trials, S of them are drawn, and the best of the sample by
//! constrained domination is mutated once (redrawn up to 16 times to avoid an arch already
//! proposed).

use unas_space::rng::Rng;

use super::selection::{members, rank_and_crowding, Member};
use super::{first_fresh, random, Origin, Proposal, Proposing, Strategy};
use crate::error::SearchError;
use crate::pareto::rank_crowding_cmp;

/// Aging evolution with population P, sample size S and proposal window W: trial `n` sees
/// `0..n+1-W`.
pub struct Aging {
    /// Population P.
    pub population: usize,
    /// Sample size S.
    pub sample: usize,
    /// Proposal window W (≥ 1).
    pub window: usize,
}

impl Strategy for Aging {
    fn visible_before(&self, n: u64) -> u64 {
        (n + 1).saturating_sub(self.window as u64)
    }

    fn propose(&mut self, at: &Proposing<'_>, rng: &mut Rng) -> Result<Proposal, SearchError> {
        let Proposing {
            space,
            n,
            trials,
            known,
        } = *at;
        let (population, sample) = (self.population, self.sample);
        if n < population as u64 {
            return random::sample(at, rng);
        }
        let visible = &trials[..self.visible_before(n).min(trials.len() as u64) as usize];
        let usable = members(space, visible);
        let start = usable.len().saturating_sub(population);
        let pop = &usable[start..];
        if pop.is_empty() {
            return random::sample(at, rng);
        }
        // Sample and mutation redrawn (up to 16 times) while the child is already known.
        first_fresh(16, known, || {
            let parent = tournament(pop, sample, rng);
            let (genome, knob) = match space.mutate(&parent.genome, rng) {
                Some((child, knob)) => (child, format!("{knob:?}")),
                None => (parent.genome.clone(), "none".into()),
            };
            Ok(Proposal {
                arch: space.decode(&genome),
                origin: Origin::Mutation {
                    parent: parent.number,
                    knob,
                },
            })
        })
    }
}

/// The best of `sample` members drawn without replacement from `pop` (non-empty), by Pareto
/// rank within the draw, then crowding distance, then the earlier draw.
fn tournament<'a>(pop: &'a [Member], sample: usize, rng: &mut Rng) -> &'a Member {
    let k = sample.clamp(1, pop.len());
    let mut idx: Vec<usize> = (0..pop.len()).collect();
    for i in 0..k {
        let j = i + rng.below(idx.len() - i);
        idx.swap(i, j);
    }
    let drawn: Vec<&Member> = idx[..k].iter().map(|&i| &pop[i]).collect();
    let keys = rank_and_crowding(&drawn.iter().map(|m| m.point.clone()).collect::<Vec<_>>());
    let mut best = 0;
    for i in 1..k {
        if rank_crowding_cmp(keys[i], keys[best]).is_lt() {
            best = i;
        }
    }
    drawn[best]
}
