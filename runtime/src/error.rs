//! Errors of the runtime crate.

use std::path::PathBuf;

/// Anything that can go wrong building, loading or running a U-Net.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The architecture description is invalid (see `UNetArch::plan`).
    #[error("invalid architecture: {0}")]
    Arch(#[from] unas_space::ArchError),
    /// A weights file could not be read.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A weights file is not valid safetensors.
    #[error("{file} is not a valid safetensors file: {message}")]
    Format {
        /// The file.
        file: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A tensor the model needs is not in the weights file.
    #[error("{file}: missing tensor `{key}` (the model expects shape {expected:?})")]
    MissingTensor {
        /// The file.
        file: PathBuf,
        /// Weight key.
        key: String,
        /// Shape the model expects.
        expected: Vec<usize>,
    },
    /// A tensor has a different shape than the model's parameter.
    #[error("{file}: tensor `{key}` has shape {found:?}, the model expects {expected:?}")]
    ShapeMismatch {
        /// The file.
        file: PathBuf,
        /// Weight key.
        key: String,
        /// Shape the model expects.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// A tensor has a dtype other than f32, f16 or bf16.
    #[error("{file}: tensor `{key}` has dtype {dtype}; only F32, F16 and BF16 are supported")]
    UnsupportedDtype {
        /// The file.
        file: PathBuf,
        /// Weight key.
        key: String,
        /// Dtype in the file.
        dtype: String,
    },
    /// The weights file has tensors the model does not use (usually a different architecture).
    #[error(
        "{file}: {count} tensor(s) are not used by this architecture, e.g. `{first}` with shape \
         {shape:?} (is the file for a different architecture?)"
    )]
    UnexpectedTensors {
        /// The file.
        file: PathBuf,
        /// How many keys were left over.
        count: usize,
        /// The first left-over key (sorted).
        first: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A model file (config, tokenizer file, …) exists but its content is invalid.
    #[error("{file}: {message}")]
    BadFile {
        /// The file.
        file: PathBuf,
        /// What is wrong, naming the field where there is one.
        message: String,
    },
    /// Model inputs have inconsistent shapes.
    #[error("bad input: {0}")]
    Input(String),
    /// The requested device is not available.
    #[error("device unavailable: {0}")]
    Device(String),
}

/// Reads and parses a JSON file; errors name the file.
pub fn read_json(path: &std::path::Path) -> Result<serde_json::Value, RuntimeError> {
    let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| RuntimeError::BadFile {
        file: path.to_path_buf(),
        message: e.to_string(),
    })
}
