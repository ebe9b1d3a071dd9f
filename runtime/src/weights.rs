//! Reading diffusers safetensors files into burn modules.
//!
//! [`Weights`] holds one file and hands out tensors by key, converting F16/BF16 to f32 and
//! checking shapes; [`Weights::finish`] fails if any tensor of the file was never asked for.
//! [`LoadWeights`] is implemented by every module of the U-Net: it writes the named tensors
//! into the module's parameters, so a missing, mis-shaped or left-over tensor is always an error
//! naming its key.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, LayerNorm, Linear};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::{Dtype, Metadata};
use safetensors::SafeTensors;

use crate::error::RuntimeError;

/// One safetensors file, read into memory, with a record of the keys taken so far.
pub struct Weights {
    file: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    meta: Metadata,
    taken: BTreeSet<String>,
}

impl Weights {
    /// Reads a safetensors file.
    pub fn open(path: &Path) -> Result<Self, RuntimeError> {
        let bytes = std::fs::read(path).map_err(|source| RuntimeError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(path.to_path_buf(), bytes)
    }

    /// Parses safetensors bytes; `file` names the source in errors.
    pub fn from_bytes(file: PathBuf, bytes: Vec<u8>) -> Result<Self, RuntimeError> {
        let (header, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|e| RuntimeError::Format {
                file: file.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            file,
            bytes,
            data_start: 8 + header,
            meta,
            taken: BTreeSet::new(),
        })
    }

    /// The file the tensors come from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// All keys in the file with their shapes.
    pub fn shapes(&self) -> HashMap<String, Vec<usize>> {
        self.meta
            .tensors()
            .into_iter()
            .map(|(k, info)| (k, info.shape.clone()))
            .collect()
    }

    /// The tensor `key` as f32 values in row-major order, checked against `expected` shape.
    pub fn take_f32(&mut self, key: &str, expected: &[usize]) -> Result<Vec<f32>, RuntimeError> {
        let Some(info) = self.meta.info(key) else {
            return Err(RuntimeError::MissingTensor {
                file: self.file.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
            });
        };
        if info.shape != expected {
            return Err(RuntimeError::ShapeMismatch {
                file: self.file.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                found: info.shape.clone(),
            });
        }
        let (start, end) = info.data_offsets;
        let raw = &self.bytes[self.data_start + start..self.data_start + end];
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(RuntimeError::UnsupportedDtype {
                    file: self.file.clone(),
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        self.taken.insert(key.to_string());
        Ok(values)
    }

    /// The tensor `key` on `device`, checked against the shape `dims`.
    pub fn tensor<B: Backend, const D: usize>(
        &mut self,
        key: &str,
        dims: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>, RuntimeError> {
        let values = self.take_f32(key, &dims)?;
        Ok(Tensor::from_data(TensorData::new(values, dims), device))
    }

    /// Succeeds when every tensor in the file was taken.
    pub fn finish(self) -> Result<(), RuntimeError> {
        let mut left: Vec<(String, Vec<usize>)> = self
            .meta
            .tensors()
            .into_iter()
            .filter(|(k, _)| !self.taken.contains(k))
            .map(|(k, info)| (k, info.shape.clone()))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        left.sort();
        let (first, shape) = left[0].clone();
        Err(RuntimeError::UnexpectedTensors {
            file: self.file,
            count: left.len(),
            first,
            shape,
        })
    }
}

/// Joins a key prefix and a name (`""` + `conv_out` = `conv_out`).
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A module whose parameters can be read from diffusers-named tensors under a key prefix.
pub trait LoadWeights<B: Backend> {
    /// Replaces the module's parameters by the tensors `{prefix}.…` of `weights`.
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError>;
}

fn replace<B: Backend, const D: usize>(
    param: &mut Param<Tensor<B, D>>,
    weights: &mut Weights,
    key: &str,
    device: &B::Device,
) -> Result<(), RuntimeError> {
    let t = weights.tensor::<B, D>(key, param.dims(), device)?;
    *param = Param::from_tensor(t);
    Ok(())
}

impl<B: Backend> LoadWeights<B> for Conv2d<B> {
    /// torch and burn share the `[out, in / groups, kh, kw]` layout.
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        replace(&mut self.weight, weights, &join(prefix, "weight"), device)?;
        if let Some(bias) = self.bias.as_mut() {
            replace(bias, weights, &join(prefix, "bias"), device)?;
        }
        Ok(())
    }
}

impl<B: Backend> LoadWeights<B> for Linear<B> {
    /// torch stores `[out, in]`; burn's (row layout) weight is `[in, out]`: transposed here.
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        let [d_in, d_out] = self.weight.dims();
        let w = weights.tensor::<B, 2>(&join(prefix, "weight"), [d_out, d_in], device)?;
        self.weight = Param::from_tensor(w.transpose());
        if let Some(bias) = self.bias.as_mut() {
            replace(bias, weights, &join(prefix, "bias"), device)?;
        }
        Ok(())
    }
}

impl<B: Backend> LoadWeights<B> for GroupNorm<B> {
    /// `gamma`/`beta` are torch's `weight`/`bias`.
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        if let Some(g) = self.gamma.as_mut() {
            replace(g, weights, &join(prefix, "weight"), device)?;
        }
        if let Some(b) = self.beta.as_mut() {
            replace(b, weights, &join(prefix, "bias"), device)?;
        }
        Ok(())
    }
}

impl<B: Backend> LoadWeights<B> for LayerNorm<B> {
    /// `gamma`/`beta` are torch's `weight`/`bias`.
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        replace(&mut self.gamma, weights, &join(prefix, "weight"), device)?;
        if let Some(b) = self.beta.as_mut() {
            replace(b, weights, &join(prefix, "bias"), device)?;
        }
        Ok(())
    }
}
