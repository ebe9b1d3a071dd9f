//! Errors of the search crate.

use std::path::PathBuf;

/// Errors of the search crate. Messages name the file, field or store location at fault.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A study configuration or search space is unreadable or invalid (file, line and field).
    #[error("{0}")]
    Config(#[from] unas_space::SpaceError),
    /// A study configuration built in code is invalid.
    #[error("study config: field `{field}`: {message}")]
    InvalidConfig {
        /// Dotted field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A latency model could not be built or failed outside of a trial.
    #[error("latency model: {0}")]
    Eval(#[from] unas_evaluator::EvalError),
    /// The quality proxy (its data, supernets) could not be prepared.
    #[error("quality proxy: {0}")]
    Quality(#[source] unas_evaluator::EvalError),
    /// The trial store failed; `location` is the database file or URL.
    #[error("trial store {location}: {message}")]
    Store {
        /// Database file or URL.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// The store's schema is newer than this build knows.
    #[error("trial store {location}: schema version {found} is newer than this unas supports ({known}); upgrade unas")]
    SchemaTooNew {
        /// Database file or URL.
        location: String,
        /// Version found in `schema_version`.
        found: i64,
        /// Latest version this build knows.
        known: i64,
    },
    /// A run directory holds no study.
    #[error("{dir}: no study found (expected {file})", dir = .dir.display(), file = .file.display())]
    NoStudy {
        /// The run directory.
        dir: PathBuf,
        /// The store file looked for.
        file: PathBuf,
    },
    /// A study of that name exists with different settings.
    #[error("trial store {location}: study `{study}` was created with different settings (`{field}` differs); resume it with its stored settings or use another run directory")]
    SettingsMismatch {
        /// Database file or URL.
        location: String,
        /// The study.
        study: String,
        /// First differing settings field (dotted path).
        field: String,
    },
    /// A stored trial could not be decoded.
    #[error("trial store {location}: trial {number} of study `{study}`: {message}")]
    CorruptTrial {
        /// Database file or URL.
        location: String,
        /// The study.
        study: String,
        /// Trial number.
        number: u64,
        /// What is wrong.
        message: String,
    },
    /// A file or directory could not be read or written.
    #[error("{file}: {source}", file = .file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The controller cannot propose (empty space, no valid architecture).
    #[error("controller: {0}")]
    Controller(String),
    /// The controller could not draw an architecture from the space.
    #[error("controller: drawing from the space: {0}")]
    Sample(#[source] unas_space::SpaceError),
    /// A benchmark request is malformed.
    #[error("strategy benchmark: {0}")]
    Benchmark(String),
}
