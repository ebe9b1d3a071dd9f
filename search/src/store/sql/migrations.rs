//! The schema: its version table and the migrations both stores run, in order.

use crate::error::SearchError;

/// Creates the version table (idempotent).
pub const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (\
    version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)";
/// Current schema version.
pub const CURRENT_VERSION: &str = "SELECT MAX(version) FROM schema_version";
/// Records an applied migration.
pub const RECORD_VERSION: &str = "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)";

/// Migrations in order: (version, statements). Never edit a released one; append.
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE studies (\
                name TEXT PRIMARY KEY, \
                settings TEXT NOT NULL, \
                seed BIGINT NOT NULL, \
                created_ms BIGINT NOT NULL)",
            "CREATE TABLE trials (\
                study TEXT NOT NULL REFERENCES studies (name), \
                number BIGINT NOT NULL, \
                hash TEXT NOT NULL, \
                arch TEXT NOT NULL, \
                origin TEXT NOT NULL, \
                status TEXT NOT NULL CHECK (status IN \
                    ('pending', 'running', 'done', 'failed', 'infeasible')), \
                duplicate_of BIGINT, \
                latency_ms DOUBLE PRECISION, \
                quality DOUBLE PRECISION, \
                params BIGINT, \
                macs BIGINT, \
                violation DOUBLE PRECISION, \
                objectives TEXT, \
                block_latency TEXT, \
                eval_seed BIGINT NOT NULL, \
                latency_s DOUBLE PRECISION, \
                quality_s DOUBLE PRECISION, \
                attempts INTEGER NOT NULL DEFAULT 0, \
                error TEXT, \
                created_ms BIGINT NOT NULL, \
                started_ms BIGINT, \
                finished_ms BIGINT, \
                PRIMARY KEY (study, number))",
        ],
    ),
    (
        2,
        &[
            "CREATE INDEX trials_by_status ON trials (study, status)",
            "CREATE INDEX trials_by_hash ON trials (study, hash)",
        ],
    ),
    (
        3,
        &[
            "ALTER TABLE trials ADD COLUMN worker TEXT",
            "ALTER TABLE trials ADD COLUMN heartbeat_ms BIGINT",
        ],
    ),
    (
        4,
        &["CREATE TABLE rungs (\
            study TEXT NOT NULL, \
            number BIGINT NOT NULL, \
            rung INTEGER NOT NULL, \
            status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')), \
            score DOUBLE PRECISION, \
            quality TEXT, \
            quality_s DOUBLE PRECISION, \
            attempts INTEGER NOT NULL DEFAULT 0, \
            error TEXT, \
            worker TEXT, \
            heartbeat_ms BIGINT, \
            created_ms BIGINT NOT NULL, \
            started_ms BIGINT, \
            finished_ms BIGINT, \
            PRIMARY KEY (study, number, rung), \
            FOREIGN KEY (study, number) REFERENCES trials (study, number))"],
    ),
];

/// The newest schema version this build knows.
pub fn known_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// The schema version `found` in a database (`None`: no migration yet, 0), refused when a
/// newer build wrote it.
pub fn check_version(found: Option<i64>, location: &str) -> Result<i64, SearchError> {
    let (found, known) = (found.unwrap_or(0), known_version());
    if found > known {
        return Err(SearchError::SchemaTooNew {
            location: location.into(),
            found,
            known,
        });
    }
    Ok(found)
}

/// A read-only opening's check: the database must be at this build's schema version (a reader
/// cannot migrate it; an older store is migrated by opening it once with a writer, e.g.
/// `unas report`).
pub fn require_current(found: Option<i64>, location: &str) -> Result<(), SearchError> {
    let found = check_version(found, location)?;
    if found < known_version() {
        return Err(SearchError::Store {
            location: location.into(),
            message: format!(
                "schema version {found}, this build reads {}: a read-only reader cannot \
                 migrate it (run `unas report` on it once, or resume the study, to migrate)",
                known_version()
            ),
        });
    }
    Ok(())
}
