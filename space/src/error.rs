//! Errors of the space crate.

use std::fmt;
use std::path::PathBuf;

/// A problem with an architecture, located by a field path such as `down[2].attentions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchError {
    /// Dotted field path inside the description (`down[1].resnets`, `stem.heads`, `up`).
    pub field: String,
    /// What is wrong, in words.
    pub message: String,
}

impl ArchError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ArchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field `{}`: {}", self.field, self.message)
    }
}

impl std::error::Error for ArchError {}

/// Where in a file something went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or `<preset NAME>` for embedded presets).
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        Ok(())
    }
}

/// Errors of the space crate.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected fields and types.
    #[error("{at}: field `{field}`: {message}")]
    Parse {
        /// File and position.
        at: Location,
        /// Field path (`down[1].resnets`), `<document>` when the syntax itself is broken.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The file parses but describes an invalid architecture or search space.
    #[error("{at}: field `{field}`: {message}")]
    Invalid {
        /// File and position of the offending field.
        at: Location,
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A preset name that does not exist.
    #[error("unknown preset `{name}` (known: {known}); pass a .toml file or one of the presets")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The presets that exist.
        known: String,
    },
    /// A cost query the architecture cannot answer (e.g. a latent not divisible by the
    /// downsampling factor).
    #[error("{0}")]
    Query(String),
}
