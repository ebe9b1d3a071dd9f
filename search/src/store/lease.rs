//! Leases of claimed trials: what a requeue did, the worker columns, and the reason a lost
//! trial fails with at the retry limit.

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
