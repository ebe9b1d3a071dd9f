//! The statements of the `rungs` table (successive halving), with PostgreSQL's `$1`
//! placeholders like [`super::queries`].

/// The columns of a rung row, written once.
macro_rules! rung_columns {
    () => {
        "study, number, rung, status, score, quality, quality_s, attempts, error, worker, \
         heartbeat_ms, created_ms, started_ms, finished_ms"
    };
}
/// Rung rows of a study (every column), by (number, rung).
pub const SELECT_RUNGS: &str = concat!(
    "SELECT ",
    rung_columns!(),
    " FROM rungs WHERE study = $1 ORDER BY number, rung"
);
/// One rung row (columns as [`SELECT_RUNGS`]).
pub const SELECT_RUNG: &str = concat!(
    "SELECT ",
    rung_columns!(),
    " FROM rungs WHERE study = $1 AND number = $2 AND rung = $3"
);
/// Inserts a rung row (every column).
pub const INSERT_RUNG: &str = concat!(
    "INSERT INTO rungs (",
    rung_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);
/// Marks a rung row running.
pub const START_RUNG: &str = "UPDATE rungs SET status = 'running', attempts = attempts + 1, \
    started_ms = $1 WHERE study = $2 AND number = $3 AND rung = $4";
/// Writes a rung's result (`$1`…`$7`), then its key (`$8`…`$10`).
macro_rules! finish_rung {
    () => {
        "UPDATE rungs SET status = $1, score = $2, quality = $3, quality_s = $4, error = $5, \
         started_ms = $6, finished_ms = $7 WHERE study = $8 AND number = $9 AND rung = $10"
    };
}
/// Writes a rung's result.
pub const FINISH_RUNG: &str = finish_rung!();
/// Writes a rung's result while `$11` holds its lease.
pub const FINISH_RUNG_CLAIMED: &str =
    concat!(finish_rung!(), " AND status = 'running' AND worker = $11");
/// The next claimable rung row: the highest rung first (PostgreSQL appends `FOR UPDATE SKIP
/// LOCKED`).
pub const CLAIM_RUNG_SELECT: &str = "SELECT number, rung FROM rungs WHERE study = $1 \
    AND status = 'pending' ORDER BY rung DESC, number LIMIT 1";
/// Claims it.
pub const CLAIM_RUNG_UPDATE: &str = "UPDATE rungs SET status = 'running', \
    attempts = attempts + 1, started_ms = $1, heartbeat_ms = $1, worker = $2 \
    WHERE study = $3 AND number = $4 AND rung = $5 AND status = 'pending'";
/// Renews a rung lease.
pub const RUNG_HEARTBEAT: &str = "UPDATE rungs SET heartbeat_ms = $1 WHERE study = $2 \
    AND number = $3 AND rung = $4 AND status = 'running' AND worker = $5";
/// Returns interrupted rung rows to pending.
pub const REQUEUE_RUNNING_RUNGS: &str =
    "UPDATE rungs SET status = 'pending' WHERE study = $1 AND status = 'running'";
/// Fails stale rung rows at the retry limit (`$1`, `$2`: the reason around the worker id).
pub const FAIL_STALE_RUNGS: &str = "UPDATE rungs SET status = 'failed', \
    error = $1 || COALESCE(worker, 'unknown') || $2, finished_ms = $3 \
    WHERE study = $4 AND status = 'running' AND heartbeat_ms < $5 AND attempts >= $6";
/// Returns the other stale rung rows to pending.
pub const REQUEUE_STALE_RUNGS: &str = "UPDATE rungs SET status = 'pending' \
    WHERE study = $1 AND status = 'running' AND heartbeat_ms < $2";
