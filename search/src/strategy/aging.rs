//! Aging evolution (Real et al. 2019): the first P trials are random; later, the population is
//! the P most recent usable visible trials, S of them are drawn, and the best of the sample by
//! constrained domination is mutated once (redrawn up to 16 times to avoid an arch already
//! proposed).

use unas_space::rng::Rng;

use super::selection::{members, rank_and_crowding, Member};
use super::{offspring, Origin, Proposal, Proposing, Strategy};
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
        // The first P trials are random; then the population is the P most recent usable
        // visible trials.
        let usable = if at.n < self.population as u64 {
            Vec::new()
        } else {
            let end = self.visible_before(at.n).min(at.trials.len() as u64) as usize;
            members(at.space, &at.trials[..end])
        };
        let pop = &usable[usable.len().saturating_sub(self.population)..];
        let sample = self.sample;
        offspring(at, rng, pop, |rng| {
            let parent = tournament(pop, sample, rng);
            let (genome, knob) = match at.space.mutate(&parent.genome, rng) {
                Some((child, knob)) => (child, format!("{knob:?}")),
                None => (parent.genome.clone(), "none".into()),
            };
            Proposal {
                arch: at.space.decode(&genome),
                origin: Origin::Mutation {
                    parent: parent.number,
                    knob,
                },
            }
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
