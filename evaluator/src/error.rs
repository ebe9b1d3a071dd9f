//! Errors of the evaluator crate.

use std::path::PathBuf;

/// Errors of the evaluator crate.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A configuration or profile file is unreadable or invalid; names the file and field.
    #[error("{0}")]
    Config(#[from] unas_space::SpaceError),
    /// A file could not be read or written.
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A lookup table has no entry for a block variant the architecture needs.
    #[error("{table}: no entry for block variant {variant}; re-run `unas profile` for this space or use a profile fallback")]
    MissingVariant {
        /// The table file.
        table: PathBuf,
        /// The variant key.
        variant: String,
    },
    /// The architecture is invalid.
    #[error("invalid architecture: {0}")]
    Arch(#[from] unas_space::ArchError),
    /// A request the model cannot answer (e.g. a dtype the profile has no rate for).
    #[error("{0}")]
    Unsupported(String),
    /// Training diverged (NaN or infinite loss); the message names the step.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// Measuring failed on the device.
    #[error("measurement failed: {0}")]
    Measure(String),
    /// Building, loading or running a model failed in the runtime.
    #[error("{0}")]
    Runtime(#[from] unas_runtime::RuntimeError),
}
