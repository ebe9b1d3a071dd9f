//! Random search: uniform samples of the space, retried up to 64 times to avoid an arch
//! already proposed. Also the first proposals of the evolutionary strategies.

use unas_space::rng::Rng;

use super::{Origin, Proposal, Proposing, Strategy};
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
    let Proposing { space, known, .. } = at;
    let mut arch = None;
    for _ in 0..64 {
        let g = space.sample(rng).map_err(SearchError::Sample)?;
        let a = space.decode(&g);
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
