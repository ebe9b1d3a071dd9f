//! NSGA-II (Deb 2002), generation-synchronous with N = population: generation 0 is random;
//! parent pool `S_0` = usable generation-0 trials and `S_k` = the best N of `S_{k-1}` ∪
//! generation k; generation g's offspring come from `S_{g-1}` by two binary tournaments,
//! uniform crossover and one mutation (retried up to 16 times to avoid an arch already
//! proposed).

use unas_space::rng::Rng;
use unas_space::SearchSpace;

use super::selection::{members, rank_and_crowding, select_best, Member};
use super::{offspring, Origin, Proposal, Proposing, Strategy};
use crate::error::SearchError;
use crate::pareto::rank_crowding_cmp;
use crate::store::TrialRecord;

/// NSGA-II with population N: trial `n` sees all earlier generations.
pub struct Nsga2 {
    population: usize,
    /// Parent pools `S_k` (derived state, rebuilt from the trials).
    pools: Vec<Vec<Member>>,
}

impl Nsga2 {
    /// NSGA-II with population `population`.
    pub fn new(population: usize) -> Self {
        Self {
            population,
            pools: Vec::new(),
        }
    }

    /// NSGA-II parent pool `S_k` (see the module docs), cached.
    fn pool(&mut self, space: &SearchSpace, k: usize, trials: &[TrialRecord]) -> &[Member] {
        let population = self.population;
        while self.pools.len() <= k {
            let g = self.pools.len();
            let lo = g * population;
            let hi = ((g + 1) * population).min(trials.len());
            let generation = members(space, &trials[lo.min(hi)..hi]);
            let mut union = self.pools.last().cloned().unwrap_or_default();
            for m in generation {
                if !union.iter().any(|u| u.hash == m.hash) {
                    union.push(m);
                }
            }
            let next = select_best(union, population);
            self.pools.push(next);
        }
        &self.pools[k]
    }
}

impl Strategy for Nsga2 {
    fn visible_before(&self, n: u64) -> u64 {
        let p = self.population as u64;
        (n / p) * p
    }

    fn propose(&mut self, at: &Proposing<'_>, rng: &mut Rng) -> Result<Proposal, SearchError> {
        // Generation 0 is random; generation g's offspring come from the pool S_{g-1}.
        let g = (at.n / self.population as u64) as usize;
        let pool = match g {
            0 => Vec::new(),
            _ => self.pool(at.space, g - 1, at.trials).to_vec(),
        };
        let keys = rank_and_crowding(&pool.iter().map(|m| m.point.clone()).collect::<Vec<_>>());
        let tournament = |rng: &mut Rng| -> usize {
            let a = rng.below(pool.len());
            if pool.len() == 1 {
                return a;
            }
            let mut b = rng.below(pool.len() - 1);
            if b >= a {
                b += 1;
            }
            if rank_crowding_cmp(keys[b], keys[a]).is_lt() {
                b
            } else {
                a
            }
        };
        offspring(at, rng, &pool, |rng| {
            let (a, b) = (tournament(rng), tournament(rng));
            let child = at.space.crossover(&pool[a].genome, &pool[b].genome, rng);
            let (child, knob) = match at.space.mutate(&child, rng) {
                Some((c, k)) => (c, Some(format!("{k:?}"))),
                None => (child, None),
            };
            Proposal {
                arch: at.space.decode(&child),
                origin: Origin::Crossover {
                    parents: [pool[a].number, pool[b].number],
                    knob,
                },
            }
        })
    }
}
