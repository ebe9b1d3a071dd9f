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

/// One safetensors file, read into memory, with a record of the keys taken so far — or a
/// probe ([`Weights::probe`]) that hands out marker values for whatever key a loader asks for.
pub struct Weights {
    file: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    meta: Metadata,
    taken: BTreeSet<String>,
    probe: Option<Probe>,
}

/// What a probe fills every tensor it hands out with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeFill {
    /// Every element is the index of the tensor's key in the order the keys were asked for.
    KeyIndex,
    /// Element `e` (row-major) is `(e >> shift) & 0xFF_FFFF`: 24 bits of its index, exact in f32.
    ElementBits {
        /// Right shift of the element index.
        shift: u32,
    },
}

/// A probe's record: the keys asked for, in order, with their shapes.
struct Probe {
    fill: ProbeFill,
    asked: Vec<(String, Vec<usize>)>,
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
            probe: None,
        })
    }

    /// A source without a file: it hands out any key with the shape asked for, filled by
    /// `fill`, and records the keys and shapes ([`Weights::asked`]). Loading a module from a
    /// probe shows where its loader puts every element of every key (`crate::save`).
    pub fn probe(fill: ProbeFill) -> Self {
        let (bytes, meta) = empty_safetensors();
        Self {
            file: PathBuf::from("<probe>"),
            bytes,
            data_start: 0,
            meta,
            taken: BTreeSet::new(),
            probe: Some(Probe {
                fill,
                asked: Vec::new(),
            }),
        }
    }

    /// The keys a probe was asked for, in order, with their shapes (empty for a file).
    pub fn asked(&self) -> Vec<(String, Vec<usize>)> {
        self.probe
            .as_ref()
            .map(|p| p.asked.clone())
            .unwrap_or_default()
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
        if let Some(p) = self.probe.as_mut() {
            if p.asked.iter().any(|(k, _)| k == key) {
                return Err(RuntimeError::Input(format!(
                    "the loader asked for tensor `{key}` twice"
                )));
            }
            let index = p.asked.len();
            p.asked.push((key.to_string(), expected.to_vec()));
            let n: usize = expected.iter().product();
            return Ok(match p.fill {
                ProbeFill::KeyIndex => vec![index as f32; n],
                ProbeFill::ElementBits { shift } => (0..n)
                    .map(|e| (((e as u64) >> shift) & 0xFF_FFFF) as f32)
                    .collect(),
            });
        }
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

    /// Succeeds when every tensor in the file was taken (always, for a probe).
    pub fn finish(self) -> Result<(), RuntimeError> {
        self.finish_except(|_| false)
    }

    /// Succeeds when every tensor in the file was taken, but those whose key `ignore` accepts.
    pub fn finish_except(self, ignore: impl Fn(&str) -> bool) -> Result<(), RuntimeError> {
        if self.probe.is_some() {
            return Ok(());
        }
        let mut left: Vec<(String, Vec<usize>)> = self
            .meta
            .tensors()
            .into_iter()
            .filter(|(k, _)| !self.taken.contains(k) && !ignore(k))
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

/// The bytes and metadata of a safetensors file with no tensors.
fn empty_safetensors() -> (Vec<u8>, Metadata) {
    let bytes = safetensors::serialize(
        std::iter::empty::<(String, safetensors::tensor::TensorView<'static>)>(),
        None,
    )
    .expect("an empty safetensors file serialises");
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("and parses");
    (bytes, meta)
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

/// A list of modules stored as `{prefix}.0.…`, `{prefix}.1.…` (diffusers' `nn.ModuleList`).
impl<B: Backend, M: LoadWeights<B>> LoadWeights<B> for Vec<M> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        for (i, m) in self.iter_mut().enumerate() {
            m.load_weights(weights, &join(prefix, &i.to_string()), device)?;
        }
        Ok(())
    }
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
