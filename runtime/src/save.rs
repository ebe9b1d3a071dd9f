//! Writing burn modules as diffusers safetensors files — the inverse of their loaders
//! ([`crate::weights::LoadWeights`]), derived from those loaders instead of written a second
//! time, so a saved file is exactly what the loader reads back.
//!
//! The loader is run on probes ([`Weights::probe`]) instead of a file: the first hands every
//! key's tensor out filled with the key's index, the next with 24-bit pieces of each element's
//! index. Reading the loaded module's parameters then tells, for every element of every
//! parameter, which key and which element of it the loader put there — through whatever
//! transposes or reshapes it applies (`Linear` weights are stored transposed). The module's
//! own values are then written to those places. Parameters start as NaN before each probe, so
//! one the loader never sets is an error, as is a key element filled twice or never.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};

use crate::error::RuntimeError;
use crate::weights::{ProbeFill, Weights};

/// Shape and row-major values of one float parameter.
pub type FloatParam = (Vec<usize>, Vec<f32>);

/// Every float parameter of `module` by burn module path (`blocks.3.Resnet.conv1.weight`),
/// on the host.
pub fn float_params<B: Backend, M: Module<B>>(module: &M) -> HashMap<String, FloatParam> {
    let mut v = Collect {
        path: Vec::new(),
        out: HashMap::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Writes `module`'s parameters to the safetensors file `path` (f32, metadata `format: pt` as
/// diffusers writes it) under the keys `load` reads them from (`load` gets the module's
/// device), so that `load` on the written file gives back the same parameters bit for bit. The
/// file is written beside its place and renamed: a reader never sees half of it.
pub fn save_safetensors<B, M, F>(module: &M, load: F, path: &Path) -> Result<(), RuntimeError>
where
    B: Backend,
    M: Module<B> + Clone,
    F: Fn(&mut M, &mut Weights, &B::Device) -> Result<(), RuntimeError>,
{
    let device = module.devices().into_iter().next().unwrap_or_default();
    let tensors = locate_and_fill(module, &|m: &mut M, w: &mut Weights| load(m, w, &device))?;
    write(&tensors, path)
}

fn locate_and_fill<B, M, F>(module: &M, load: &F) -> Result<Vec<(String, FloatParam)>, RuntimeError>
where
    B: Backend,
    M: Module<B> + Clone,
    F: Fn(&mut M, &mut Weights) -> Result<(), RuntimeError>,
{
    let probe = |fill: ProbeFill| -> Result<_, RuntimeError> {
        let mut m = module.clone().map(&mut FillNan);
        let mut w = Weights::probe(fill);
        load(&mut m, &mut w)?;
        Ok((w.asked(), float_params(&m)))
    };
    let (keys, key_of) = probe(ProbeFill::KeyIndex)?;
    let largest = keys
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .max()
        .unwrap_or(0);
    let mut element_bits = Vec::new();
    let mut shift = 0u32;
    loop {
        element_bits.push(probe(ProbeFill::ElementBits { shift })?.1);
        shift += 24;
        if (largest.saturating_sub(1) as u64) >> shift == 0 {
            break;
        }
    }
    let mut out: Vec<Vec<f32>> = keys
        .iter()
        .map(|(_, s)| vec![0.0; s.iter().product()])
        .collect();
    let mut filled: Vec<Vec<bool>> = out.iter().map(|v| vec![false; v.len()]).collect();
    let bad = |what: String| RuntimeError::Input(format!("cannot save through the loader: {what}"));
    for (path, (_, values)) in float_params(module) {
        let located = |m: &HashMap<String, FloatParam>| {
            m.get(&path).map(|(_, v)| v.clone()).ok_or_else(|| {
                bad(format!(
                    "the loader changed the module's structure at `{path}`"
                ))
            })
        };
        let key_index = located(&key_of)?;
        let bits = element_bits
            .iter()
            .map(located)
            .collect::<Result<Vec<_>, _>>()?;
        if key_index.iter().any(|v| v.is_nan()) {
            return Err(bad(format!("the loader never sets parameter `{path}`")));
        }
        for (i, &value) in values.iter().enumerate() {
            let k = key_index[i];
            if k.fract() != 0.0 || k < 0.0 || k as usize >= keys.len() {
                return Err(bad(format!(
                    "parameter `{path}` is not a copy of a key's tensor"
                )));
            }
            let k = k as usize;
            let mut e = 0u64;
            for (j, pass) in bits.iter().enumerate() {
                e |= (pass[i] as u64) << (24 * j);
            }
            let e = e as usize;
            if e >= out[k].len() || filled[k][e] {
                return Err(bad(format!(
                    "parameter `{path}` maps onto `{}` twice or out of range",
                    keys[k].0
                )));
            }
            out[k][e] = value;
            filled[k][e] = true;
        }
    }
    if let Some(k) = filled.iter().position(|f| f.iter().any(|&x| !x)) {
        return Err(bad(format!("no parameter fills all of `{}`", keys[k].0)));
    }
    Ok(keys
        .into_iter()
        .zip(out)
        .map(|((key, shape), values)| (key, (shape, values)))
        .collect())
}

/// Writes f32 tensors as a safetensors file, atomically.
fn write(tensors: &[(String, FloatParam)], path: &Path) -> Result<(), RuntimeError> {
    let io = |source| RuntimeError::Io {
        file: path.to_path_buf(),
        source,
    };
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, (_, v))| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((key, (shape, _)), b)| {
            TensorView::new(Dtype::F32, shape.clone(), b).map(|view| (key.clone(), view))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RuntimeError::Format {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let data = safetensors::serialize(views, metadata).map_err(|e| RuntimeError::Format {
        file: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

struct Collect {
    path: Vec<String>,
    out: HashMap<String, FloatParam>,
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = t
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 parameter");
        self.out.insert(self.path.join("."), (shape, values));
    }
}

/// Sets every float parameter to NaN (a parameter the loader does not replace stays NaN).
struct FillNan;

impl<B: Backend> ModuleMapper<B> for FillNan {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        param.map(|t| t.full_like(f32::NAN))
    }
}
