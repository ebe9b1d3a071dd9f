//! Saving and loading the proxy's trained modules (small VAE, feature extractor, teacher
//! U-Net) in burn's named MessagePack format, full precision, with errors naming the file.

use std::path::Path;

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use unas_runtime::device::Cpu;

use crate::EvalError;

fn file_err(path: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `module`'s weights to `path` (burn sets the `.mpk` extension).
pub fn save_module<M: Module<Cpu>>(module: &M, path: &Path) -> Result<(), EvalError> {
    module
        .clone()
        .save_file(path, &NamedMpkFileRecorder::<FullPrecisionSettings>::new())
        .map_err(|e| file_err(path, e))
}

/// Loads weights written by [`save_module`] into `module` (which fixes the shapes).
pub fn load_module<M: Module<Cpu>>(module: M, path: &Path) -> Result<M, EvalError> {
    module
        .load_file(
            path,
            &NamedMpkFileRecorder::<FullPrecisionSettings>::new(),
            &Default::default(),
        )
        .map_err(|e| file_err(path, e))
}
