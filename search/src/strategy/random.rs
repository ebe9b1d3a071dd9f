//! Random search: uniform samples of the space, retried up to 64 times to avoid an arch
//! already proposed. Also the first proposals of the evolutionary strategies.

use unas_space::rng::Rng;

use super::{first_fresh, Origin, Proposal, Proposing, Strategy};
use crate::error::SearchError;

/// Random search: sees no earlier trial.
pub struct Random;

impl Strategy for Random {
    fn visible_before(&self, _: u64) -> u64 {
        0
    }

    fn propose(&mut self, at: &Proposing<'_>, rng: &mut Rng) -> Result<Proposal, SearchError> {
        sample(at, rng)
    }
}

/// A uniform sample of the space, redrawn (up to 64 draws) while its hash is known.
pub(crate) fn sample(at: &Proposing<'_>, rng: &mut Rng) -> Result<Proposal, SearchError> {
    first_fresh(64, at.known, || {
        let g = at.space.sample(rng).map_err(SearchError::Sample)?;
        Ok(Proposal {
            arch: at.space.decode(&g),
            origin: Origin::Random,
        })
    })
}
