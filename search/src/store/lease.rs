//! Leases of claimed trials and rungs: what a requeue did, the worker columns, the reason a lost
//! trial fails with at the retry limit, and the upkeep both kinds of row share ([`Leases`]).

use super::param::Param;
use crate::error::SearchError;

/// What [`super::Store::requeue_stale`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    /// Trials returned to `pending`.
    pub pending: usize,
    /// Trials failed because they reached the retry limit.
    pub failed: usize,
}

/// The worker columns of a claimed trial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Trial number.
    pub number: u64,
    /// Worker id (`host:pid:nonce`) of the last claim.
    pub worker: Option<String>,
    /// Last heartbeat (store clock, Unix ms).
    pub heartbeat_ms: Option<i64>,
}

/// The reason a stale trial at the retry limit fails with: `(prefix, suffix)` around the
/// worker id.
pub(crate) fn stale_reason(max_attempts: u32, grace_ms: i64) -> (String, String) {
    (
        "worker lost: no heartbeat from worker ".to_string(),
        format!(
            " within the grace period ({:.1} s); gave up after {max_attempts} attempts",
            grace_ms as f64 / 1000.0
        ),
    )
}

/// `(stale_before_ms, max_attempts, now_ms)` of a requeue of lost work.
pub type Stale = (i64, u32, i64);

/// The lease upkeep that trials and rungs share, behind the default methods of
/// [`super::Store`] and [`super::RungStore`]. Sealed (this module is private): implemented for
/// every SQL dialect in `super::dialect`.
pub trait Leases {
    /// Runs a heartbeat statement (`$1` the time, the worker last); whether it renewed a lease
    /// (changed one row). Errors name `what`.
    fn renew(&mut self, what: &str, query: &str, args: &[&dyn Param]) -> Result<bool, SearchError>;
    /// Lost workers' rows of a study: `statements[0]` fails those at the retry limit, then
    /// `statements[1]` returns the others to pending, in one transaction.
    fn requeue_lost(
        &mut self,
        study: &str,
        stale: Stale,
        statements: [&str; 2],
    ) -> Result<Requeued, SearchError>;
}
