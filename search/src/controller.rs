//! Controllers: proposal of trial `n` is a pure function of the study seed, `n` and the
//! results of the trials it may see, so the store alone determines the controller's state.
//!
//! - The RNG of trial `n` is seeded from `(seed, n)` ([`trial_seed`]).
//! - Trial `n` sees the trials `0..visible_before(n)` (all final before it is proposed):
//!   random search sees none; aging evolution sees `0..n+1-W` (W = the proposal window);
//!   NSGA-II sees all earlier generations.
//!
//! **Aging evolution** (Real et al. 2019): the first P trials are random. Later, the population
//! is the P most recent *usable* visible trials (done or infeasible; failed ones are skipped),
//! so the oldest leaves as a new one arrives. S members are drawn without replacement; the
//! parent is the best of the sample by constrained domination: Pareto rank within the sample
//! (feasible before infeasible, infeasible by total violation, feasible by (latency, quality)
//! dominance), then larger crowding distance within that front, then the earlier draw. The
//! child is one [`SearchSpace::mutate`] of the parent.
//!
//! **NSGA-II** (Deb 2002), generation-synchronous with N = population: generation 0 is random;
//! parent pool `S_0` = usable generation-0 trials and `S_k` = the best N of `S_{k-1}` ∪
//! generation k (elitist: constrained non-dominated sort, last front by crowding distance);
//! generation g's offspring come from `S_{g-1}`: two binary tournaments (rank, then crowding),
//! uniform crossover, then one mutation (retried up to 16 times to avoid an arch already
//! proposed).
//!
//! **Random**: uniform samples of the space (retried up to 64 times to avoid an arch already
//! proposed).

use std::collections::HashMap;

use serde::Serialize;
use unas_space::rng::Rng;
use unas_space::{Genome, SearchSpace, UNetArch};

use crate::config::ControllerConfig;
use crate::error::SearchError;
use crate::pareto::{constrained_sort, crowding_distance, rank_crowding_cmp, Constrained};
use crate::store::{TrialRecord, TrialStatus};

/// How a candidate was made (stored as JSON in the trial's `origin`).
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// A uniform sample of the space.
    Random,
    /// One mutation of a parent.
    Mutation {
        /// Parent trial number.
        parent: u64,
        /// The knob changed.
        knob: String,
    },
    /// Crossover of two parents then a mutation.
    Crossover {
        /// Parent trial numbers.
        parents: [u64; 2],
        /// The knob the mutation changed, if any.
        knob: Option<String>,
    },
    /// A reference architecture of the study (`references`): evaluated like a trial but kept
    /// apart from the trials (never a parent, not in the trial budget).
    Reference {
        /// The preset name or file it was loaded from.
        name: String,
    },
}

/// A proposed candidate.
#[derive(Clone, Debug)]
pub struct Proposal {
    /// The architecture.
    pub arch: UNetArch,
    /// How it was made.
    pub origin: Origin,
}

/// The RNG seed of trial `number` in a study seeded `seed` (SplitMix64 mixing; the same on
/// every platform).
pub fn trial_seed(seed: u64, number: u64) -> u64 {
    splitmix(seed ^ splitmix(number.wrapping_add(0x5EED)))
}

/// SplitMix64 finaliser.
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A trial usable as a parent: its genome and its constrained objectives.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub number: u64,
    pub hash: String,
    pub genome: Genome,
    pub point: Constrained,
}

/// Proposes candidates; see the module docs.
pub struct Controller {
    config: ControllerConfig,
    space: SearchSpace,
    seed: u64,
    window: usize,
    /// NSGA-II parent pools `S_k` (derived state, rebuilt from the trials).
    pools: Vec<Vec<Member>>,
}

impl Controller {
    /// A controller for a study.
    pub fn new(config: ControllerConfig, space: SearchSpace, seed: u64, window: usize) -> Self {
        Self {
            config,
            space,
            seed,
            window: window.max(1),
            pools: Vec::new(),
        }
    }

    /// Trials `0..visible_before(n)` must be final before trial `n` is proposed; only they
    /// influence it.
    pub fn visible_before(&self, n: u64) -> u64 {
        match self.config {
            ControllerConfig::Random => 0,
            ControllerConfig::Aging { .. } => (n + 1).saturating_sub(self.window as u64),
            ControllerConfig::Nsga2 { population } => {
                let p = population as u64;
                (n / p) * p
            }
        }
    }

    /// Proposes trial `n` given every earlier trial (`trials[i].number == i`) and the first
    /// trial number of each hash proposed so far.
    pub fn propose(
        &mut self,
        n: u64,
        trials: &[TrialRecord],
        known: &HashMap<String, u64>,
    ) -> Result<Proposal, SearchError> {
        let mut rng = Rng::seed(trial_seed(self.seed, n));
        let visible = &trials[..self.visible_before(n).min(trials.len() as u64) as usize];
        debug_assert!(visible.iter().all(|t| t.status.is_final()));
        match self.config.clone() {
            ControllerConfig::Random => self.random(&mut rng, known),
            ControllerConfig::Aging { population, sample } => {
                if n < population as u64 {
                    return self.random(&mut rng, known);
                }
                let usable = self.members(visible);
                let start = usable.len().saturating_sub(population);
                let pop = &usable[start..];
                if pop.is_empty() {
                    return self.random(&mut rng, known);
                }
                let k = sample.min(pop.len());
                let mut idx: Vec<usize> = (0..pop.len()).collect();
                for i in 0..k {
                    let j = i + rng.below(idx.len() - i);
                    idx.swap(i, j);
                }
                let drawn: Vec<&Member> = idx[..k].iter().map(|&i| &pop[i]).collect();
                let keys =
                    rank_and_crowding(&drawn.iter().map(|m| m.point.clone()).collect::<Vec<_>>());
                let mut best = 0;
                for i in 1..k {
                    if rank_crowding_cmp(keys[i], keys[best]).is_lt() {
                        best = i;
                    }
                }
                let parent = drawn[best];
                match self.space.mutate(&parent.genome, &mut rng) {
                    Some((child, knob)) => Ok(Proposal {
                        arch: self.space.decode(&child),
                        origin: Origin::Mutation {
                            parent: parent.number,
                            knob: format!("{knob:?}"),
                        },
                    }),
                    None => Ok(Proposal {
                        arch: self.space.decode(&parent.genome),
                        origin: Origin::Mutation {
                            parent: parent.number,
                            knob: "none".into(),
                        },
                    }),
                }
            }
            ControllerConfig::Nsga2 { population } => {
                let g = (n / population as u64) as usize;
                if g == 0 {
                    return self.random(&mut rng, known);
                }
                let pool = self.pool(g - 1, population, trials).to_vec();
                if pool.is_empty() {
                    return self.random(&mut rng, known);
                }
                let keys =
                    rank_and_crowding(&pool.iter().map(|m| m.point.clone()).collect::<Vec<_>>());
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
                let mut last = None;
                for _ in 0..16 {
                    let (a, b) = (tournament(&mut rng), tournament(&mut rng));
                    let child = self
                        .space
                        .crossover(&pool[a].genome, &pool[b].genome, &mut rng);
                    let (child, knob) = match self.space.mutate(&child, &mut rng) {
                        Some((c, k)) => (c, Some(format!("{k:?}"))),
                        None => (child, None),
                    };
                    let arch = self.space.decode(&child);
                    let fresh = !known.contains_key(&arch.hash_id());
                    let p = Proposal {
                        arch,
                        origin: Origin::Crossover {
                            parents: [pool[a].number, pool[b].number],
                            knob,
                        },
                    };
                    if fresh {
                        return Ok(p);
                    }
                    last = Some(p);
                }
                Ok(last.expect("at least one try"))
            }
        }
    }

    fn random(&self, rng: &mut Rng, known: &HashMap<String, u64>) -> Result<Proposal, SearchError> {
        let mut arch = None;
        for _ in 0..64 {
            let g = self.space.sample(rng).map_err(SearchError::Sample)?;
            let a = self.space.decode(&g);
            let fresh = !known.contains_key(&a.hash_id());
            arch = Some(a);
            if fresh {
                break;
            }
        }
        Ok(Proposal {
            arch: arch.expect("at least one sample"),
            origin: Origin::Random,
        })
    }

    /// Usable trials (done, or infeasible with predictions) as members, in number order.
    pub(crate) fn members(&self, trials: &[TrialRecord]) -> Vec<Member> {
        trials
            .iter()
            .filter_map(|t| {
                let point = match t.status {
                    TrialStatus::Done => Constrained {
                        objectives: vec![t.latency_ms?, t.quality?],
                        violation: 0.0,
                    },
                    TrialStatus::Infeasible => Constrained {
                        objectives: vec![t.latency_ms.unwrap_or(f64::INFINITY), f64::INFINITY],
                        violation: t.violation.filter(|v| *v > 0.0).unwrap_or(f64::MAX),
                    },
                    _ => return None,
                };
                Some(Member {
                    number: t.number,
                    hash: t.hash.clone(),
                    genome: self.space.encode(&t.arch)?,
                    point,
                })
            })
            .collect()
    }

    /// NSGA-II parent pool `S_k` (see the module docs), cached.
    fn pool(&mut self, k: usize, population: usize, trials: &[TrialRecord]) -> &[Member] {
        while self.pools.len() <= k {
            let g = self.pools.len();
            let lo = g * population;
            let hi = ((g + 1) * population).min(trials.len());
            let generation = self.members(&trials[lo.min(hi)..hi]);
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

/// (rank, crowding distance) of each point under constrained domination; crowding is computed
/// within each front on the objectives (feasible fronts) or the violation (infeasible ones).
pub(crate) fn rank_and_crowding(points: &[Constrained]) -> Vec<(usize, f64)> {
    let mut keys = vec![(0usize, 0.0f64); points.len()];
    for (rank, front) in constrained_sort(points).iter().enumerate() {
        let values: Vec<Vec<f64>> = front
            .iter()
            .map(|&i| {
                if points[i].feasible() {
                    points[i].objectives.clone()
                } else {
                    vec![points[i].violation]
                }
            })
            .collect();
        let d = crowding_distance(&values);
        for (j, &i) in front.iter().enumerate() {
            keys[i] = (rank, d[j]);
        }
    }
    keys
}

/// Elitist NSGA-II selection of `n` members: whole fronts while they fit, then the last front
/// by crowding distance (larger first; ties: lower trial number). Result in number order.
pub(crate) fn select_best(members: Vec<Member>, n: usize) -> Vec<Member> {
    if members.len() <= n {
        let mut m = members;
        m.sort_by_key(|m| m.number);
        return m;
    }
    let points: Vec<Constrained> = members.iter().map(|m| m.point.clone()).collect();
    let keys = rank_and_crowding(&points);
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| {
        rank_crowding_cmp(keys[a], keys[b]).then(members[a].number.cmp(&members[b].number))
    });
    let mut chosen: Vec<Member> = order[..n].iter().map(|&i| members[i].clone()).collect();
    chosen.sort_by_key(|m| m.number);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(number: u64, lat: f64, q: f64, violation: f64) -> Member {
        let space = SearchSpace::load("tiny").unwrap();
        let genome = space.encode(&unas_space::preset("tiny")).unwrap();
        Member {
            number,
            hash: format!("h{number}"),
            genome,
            point: Constrained {
                objectives: vec![lat, q],
                violation,
            },
        }
    }

    #[test]
    fn trial_seeds_differ_and_are_stable() {
        assert_ne!(trial_seed(0, 0), trial_seed(0, 1));
        assert_ne!(trial_seed(0, 1), trial_seed(1, 0));
        assert_eq!(trial_seed(7, 3), trial_seed(7, 3));
    }

    #[test]
    fn elitist_selection_keeps_fronts_then_crowding() {
        let m = vec![
            member(0, 1.0, 5.0, 0.0),
            member(1, 2.0, 3.0, 0.0),
            member(2, 3.0, 2.0, 0.0),
            member(3, 5.0, 1.0, 0.0),
            member(4, 4.0, 4.0, 0.0), // dominated
            member(5, 0.1, 0.1, 0.3), // infeasible
        ];
        // Front 0 has 4 members; keep 3: both extremes (infinite crowding) and the interior
        // one with the larger crowding distance. Trial 1: (3-1)/4 + (5-2)/4 = 1.25;
        // trial 2: (5-2)/4 + (3-1)/4 = 1.25 -> tie, the lower number (1) wins.
        let got: Vec<u64> = select_best(m.clone(), 3).iter().map(|m| m.number).collect();
        assert_eq!(got, vec![0, 1, 3]);
        // Five: the whole first front plus the dominated feasible one before the infeasible.
        let got: Vec<u64> = select_best(m, 5).iter().map(|m| m.number).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn ranks_and_crowding() {
        let p: Vec<Constrained> = [
            member(0, 1.0, 5.0, 0.0),
            member(1, 2.0, 3.0, 0.0),
            member(2, 4.0, 1.0, 0.0),
            member(3, 3.0, 4.0, 0.0),
            member(4, 0.0, 0.0, 0.5),
        ]
        .iter()
        .map(|m| m.point.clone())
        .collect();
        let k = rank_and_crowding(&p);
        assert_eq!(k[0], (0, f64::INFINITY));
        assert_eq!(k[1].0, 0);
        assert!((k[1].1 - 2.0).abs() < 1e-12);
        assert_eq!(k[3].0, 1);
        assert_eq!(k[4].0, 2);
    }
}
