//! The statements both stores run, written once with PostgreSQL's `$1` placeholders (see
//! [`super::sqlite_placeholders`]); every statement that lists a trial's columns uses the one
//! column list.

/// Inserts a study.
pub const INSERT_STUDY: &str =
    "INSERT INTO studies (name, settings, seed, created_ms) VALUES ($1, $2, $3, $4)";
/// One study.
pub const SELECT_STUDY: &str =
    "SELECT name, settings, seed, created_ms FROM studies WHERE name = $1";
/// Study names.
pub const STUDY_NAMES: &str = "SELECT name FROM studies ORDER BY created_ms, name";
/// The columns of a trial, written once for the statements that list them all.
macro_rules! trial_columns {
    () => {
        "study, number, hash, arch, origin, status, duplicate_of, latency_ms, quality, \
         params, macs, violation, objectives, block_latency, eval_seed, latency_s, \
         quality_s, attempts, error, created_ms, started_ms, finished_ms"
    };
}
/// Trials of a study (every column, in the order `INSERT_TRIAL` writes them).
pub const SELECT_TRIALS: &str = concat!(
    "SELECT ",
    trial_columns!(),
    " FROM trials WHERE study = $1 ORDER BY number"
);
/// Inserts a trial (every column).
pub const INSERT_TRIAL: &str = concat!(
    "INSERT INTO trials (",
    trial_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
     $17, $18, $19, $20, $21, $22)"
);
/// Marks a trial running.
pub const MARK_RUNNING: &str = "UPDATE trials SET status = 'running', \
    attempts = attempts + 1, started_ms = $1 WHERE study = $2 AND number = $3";
/// The result columns a finished trial writes (`$1`…`$13`), then its key (`$14`, `$15`).
macro_rules! finish_trial {
    () => {
        "UPDATE trials SET status = $1, latency_ms = $2, quality = $3, params = $4, \
         macs = $5, violation = $6, objectives = $7, block_latency = $8, latency_s = $9, \
         quality_s = $10, error = $11, started_ms = $12, finished_ms = $13 \
         WHERE study = $14 AND number = $15"
    };
}
/// Writes a result.
pub const FINISH_TRIAL: &str = finish_trial!();
/// Returns interrupted trials to pending.
pub const REQUEUE_RUNNING: &str =
    "UPDATE trials SET status = 'pending' WHERE study = $1 AND status = 'running'";
/// One trial (columns as [`SELECT_TRIALS`]).
pub const SELECT_TRIAL: &str = concat!(
    "SELECT ",
    trial_columns!(),
    " FROM trials WHERE study = $1 AND number = $2"
);
/// The next claimable trial (PostgreSQL appends `FOR UPDATE SKIP LOCKED`).
pub const CLAIM_SELECT: &str = "SELECT number FROM trials WHERE study = $1 \
    AND status = 'pending' AND duplicate_of IS NULL ORDER BY number LIMIT 1";
/// Claims it.
pub const CLAIM_UPDATE: &str = "UPDATE trials SET status = 'running', \
    attempts = attempts + 1, started_ms = $1, heartbeat_ms = $1, worker = $2 \
    WHERE study = $3 AND number = $4 AND status = 'pending'";
/// Renews a lease.
pub const HEARTBEAT: &str = "UPDATE trials SET heartbeat_ms = $1 \
    WHERE study = $2 AND number = $3 AND status = 'running' AND worker = $4";
/// Writes a result while holding the lease.
pub const FINISH_CLAIMED: &str =
    concat!(finish_trial!(), " AND status = 'running' AND worker = $16");
/// Fails stale trials at the retry limit (`$1` is the reason's prefix).
pub const FAIL_STALE: &str = "UPDATE trials SET status = 'failed', \
    error = $1 || COALESCE(worker, 'unknown') || $2, finished_ms = $3 \
    WHERE study = $4 AND status = 'running' AND heartbeat_ms < $5 AND attempts >= $6";
/// Returns the other stale trials to pending.
pub const REQUEUE_STALE: &str = "UPDATE trials SET status = 'pending' \
    WHERE study = $1 AND status = 'running' AND heartbeat_ms < $2";
/// Worker columns of claimed trials.
pub const SELECT_LEASES: &str = "SELECT number, worker, heartbeat_ms FROM trials \
    WHERE study = $1 AND (worker IS NOT NULL OR heartbeat_ms IS NOT NULL) ORDER BY number";
/// Sets them (copies).
pub const SET_LEASE: &str =
    "UPDATE trials SET worker = $1, heartbeat_ms = $2 WHERE study = $3 AND number = $4";
