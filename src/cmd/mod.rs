//! CLI commands: each submodule parses its arguments, calls the library crates and prints.

pub mod bench;
pub mod dashboard;
pub mod export_weights;
pub mod generate;
pub mod latency;
pub mod pipeline_folder;
pub mod progress;
pub mod quality;
pub mod search;
pub mod space;
pub mod store;
pub mod supernet;
pub mod train;
pub mod worker;

use std::fmt::Display;

/// A failed command: the message to print and the process exit code
/// (2 = bad input such as a config, file or argument; 1 = a failure while running).
#[derive(Debug)]
pub struct CliError {
    /// Exit code.
    pub code: i32,
    /// One-line (or few-line) explanation.
    pub message: String,
}

impl CliError {
    /// Bad input: exit code 2.
    pub fn input(message: impl Display) -> Self {
        Self {
            code: 2,
            message: message.to_string(),
        }
    }

    /// A failure while running: exit code 1.
    pub fn failure(message: impl Display) -> Self {
        Self {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<unas_space::SpaceError> for CliError {
    fn from(e: unas_space::SpaceError) -> Self {
        Self::input(e)
    }
}

/// Result of a command.
pub type CmdResult = Result<(), CliError>;
