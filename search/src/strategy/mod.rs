//! Search strategies behind one trait ([`Strategy`]), driven by a [`Controller`]: proposal of
//! trial `n` is a pure function of the study seed, `n` and the results of the trials it may
//! see, so the store alone determines the controller's state.
//!
//! - The RNG of trial `n` is seeded from `(seed, n)` ([`trial_seed`]).
//! - Trial `n` sees the trials `0..visible_before(n)` (all final before it is proposed):
//!   random search sees none; aging evolution sees `0..n+1-W` (W = the proposal window);
//!   NSGA-II sees all earlier generations.
//!
//! **Aging evolution** ([`Aging`]; Real et al. 2019): the first P trials are random. Later, the
//! population is the P most recent *usable* visible trials (done or infeasible; failed ones
//! are skipped), so the oldest leaves as a new one arrives. S members are drawn without
//! replacement; the parent is the best of the sample by constrained domination: Pareto rank
//! within the sample (feasible before infeasible, infeasible by total violation, feasible by
//! (latency, quality) dominance), then larger crowding distance within that front, then the
//! earlier draw. The child is one [`SearchSpace::mutate`] of the parent (sample and mutation
//! redrawn up to 16 times to avoid an arch already proposed).
//!
//! **NSGA-II** ([`Nsga2`]; Deb 2002), generation-synchronous with N = population: generation 0
//! is random; parent pool `S_0` = usable generation-0 trials and `S_k` = the best N of
//! `S_{k-1}` ∪ generation k (elitist: constrained non-dominated sort, last front by crowding
//! distance); generation g's offspring come from `S_{g-1}`: two binary tournaments (rank, then
//! crowding), uniform crossover, then one mutation (retried up to 16 times to avoid an arch
//! already proposed).
//!
//! **Random** ([`Random`]): uniform samples of the space (retried up to 64 times to avoid an
//! arch already proposed).

mod aging;
mod nsga2;
mod random;
pub(crate) mod selection;

use std::collections::HashMap;

use serde::Serialize;
use unas_space::rng::Rng;
use unas_space::{SearchSpace, UNetArch};

use crate::config::ControllerConfig;
use crate::error::SearchError;
use crate::store::TrialRecord;

pub use aging::Aging;
pub use nsga2::Nsga2;
pub use random::Random;

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

/// A search strategy: which earlier trials trial `n` may see, and its proposal given them.
/// Stateless given the trials (any derived state is rebuilt from them), so the store alone
/// determines it.
pub trait Strategy: Send {
    /// Trials `0..visible_before(n)` must be final before trial `n` is proposed; only they
    /// influence it.
    fn visible_before(&self, n: u64) -> u64;

    /// Proposes trial `at.n` from its generator `rng`.
    fn propose(&mut self, at: &Proposing<'_>, rng: &mut Rng) -> Result<Proposal, SearchError>;
}

/// What a strategy sees when it proposes trial `n`.
pub struct Proposing<'a> {
    /// The search space.
    pub space: &'a SearchSpace,
    /// The trial number.
    pub n: u64,
    /// Every earlier trial (`trials[i].number == i`).
    pub trials: &'a [TrialRecord],
    /// The first trial number of each hash proposed so far.
    pub known: &'a HashMap<String, u64>,
}

/// The first of up to `tries` proposals of `draw` whose arch is not in `known`, or the last
/// one when all are known: a duplicate is a trial spent on a stored result, so every strategy
/// redraws instead.
pub(crate) fn first_fresh(
    tries: usize,
    known: &HashMap<String, u64>,
    mut draw: impl FnMut() -> Result<Proposal, SearchError>,
) -> Result<Proposal, SearchError> {
    let mut p = draw()?;
    for _ in 1..tries {
        if !known.contains_key(&p.arch.hash_id()) {
            break;
        }
        p = draw()?;
    }
    Ok(p)
}

/// An evolutionary strategy's proposal: a random one while it has no `parents` (its first
/// trials, or none usable yet), else the first of up to 16 children of `breed` whose arch is
/// not known yet.
pub(crate) fn offspring<P>(
    at: &Proposing<'_>,
    rng: &mut Rng,
    parents: &[P],
    mut breed: impl FnMut(&mut Rng) -> Proposal,
) -> Result<Proposal, SearchError> {
    if parents.is_empty() {
        return random::sample(at, rng);
    }
    first_fresh(16, at.known, || Ok(breed(rng)))
}

/// Proposes a study's candidates with the strategy of its configuration, each from trial
/// `n`'s own generator ([`trial_seed`]).
pub struct Controller {
    strategy: Box<dyn Strategy>,
    space: SearchSpace,
    seed: u64,
}

impl Controller {
    /// A controller for a study (`window`: the proposal window of aging evolution).
    pub fn new(config: ControllerConfig, space: SearchSpace, seed: u64, window: usize) -> Self {
        let strategy: Box<dyn Strategy> = match config {
            ControllerConfig::Random => Box::new(Random),
            ControllerConfig::Aging { population, sample } => Box::new(Aging {
                population,
                sample,
                window: window.max(1),
            }),
            ControllerConfig::Nsga2 { population } => Box::new(Nsga2::new(population)),
        };
        Self {
            strategy,
            space,
            seed,
        }
    }

    /// Trials `0..visible_before(n)` must be final before trial `n` is proposed; only they
    /// influence it.
    pub fn visible_before(&self, n: u64) -> u64 {
        self.strategy.visible_before(n)
    }

    /// Proposes trial `n` given every earlier trial (`trials[i].number == i`) and the first
    /// trial number of each hash proposed so far.
    pub fn propose(
        &mut self,
        n: u64,
        trials: &[TrialRecord],
        known: &HashMap<String, u64>,
    ) -> Result<Proposal, SearchError> {
        debug_assert!(
            trials[..self.visible_before(n).min(trials.len() as u64) as usize]
                .iter()
                .all(|t| t.status.is_final())
        );
        let mut rng = Rng::seed(trial_seed(self.seed, n));
        let at = Proposing {
            space: &self.space,
            n,
            trials,
            known,
        };
        self.strategy.propose(&at, &mut rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_seeds_differ_and_are_stable() {
        assert_ne!(trial_seed(0, 0), trial_seed(0, 1));
        assert_ne!(trial_seed(0, 1), trial_seed(1, 0));
        assert_eq!(trial_seed(7, 3), trial_seed(7, 3));
    }
}
