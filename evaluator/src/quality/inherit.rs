//! Weight inheritance from a teacher U-Net (issue 6's "weight inheritance where shapes
//! match"): every parameter of a candidate whose module path also exists in the teacher starts
//! from the teacher's values — the whole tensor when the shapes are equal, the leading
//! sub-tensor (first output channels, first input channels, …) when the candidate is narrower
//! in some dimension and no wider in any. Parameters without a usable teacher tensor keep
//! their seeded initialisation. Paths are burn module paths, which follow diffusers' names
//! (`down_blocks.1.resnets.0.conv1.weight`), so a candidate with fewer layers per block
//! inherits the teacher's first layers.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// The float parameters of a teacher, by module path.
#[derive(Clone, Debug, Default)]
pub struct TeacherWeights {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// How many parameters (tensors) of a candidate were inherited whole, sliced, or kept at
/// their initialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InheritStats {
    /// Same path and shape: copied.
    pub copied: usize,
    /// Same path, narrower candidate: leading sub-tensor copied.
    pub sliced: usize,
    /// No teacher tensor at that path, or the candidate is wider: left as initialised.
    pub fresh: usize,
}

impl TeacherWeights {
    /// Reads every float parameter of `teacher`.
    pub fn from_module<B: Backend, M: Module<B>>(teacher: &M) -> Self {
        let mut v = Collect {
            path: Vec::new(),
            out: HashMap::new(),
        };
        teacher.visit(&mut v);
        Self { tensors: v.out }
    }

    /// The tensor at module path `path`: shape and row-major values.
    pub fn get(&self, path: &str) -> Option<(&[usize], &[f32])> {
        self.tensors
            .get(path)
            .map(|(s, v)| (s.as_slice(), v.as_slice()))
    }

    /// All module paths held.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors held.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when the teacher has no parameters.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// `module` with every parameter that has a usable teacher tensor replaced by it (see the
    /// module docs), and the counts.
    pub fn inherit<B: Backend, M: Module<B>>(&self, module: M) -> (M, InheritStats) {
        let mut m = Inherit {
            teacher: self,
            path: Vec::new(),
            stats: InheritStats::default(),
        };
        let module = module.map(&mut m);
        (module, m.stats)
    }
}

/// The leading `shape` sub-tensor of the row-major tensor `data` of shape `full`, or `None`
/// when ranks differ or `shape` is wider than `full` in some dimension.
pub fn leading_slice(data: &[f32], full: &[usize], shape: &[usize]) -> Option<Vec<f32>> {
    if full.len() != shape.len() || shape.iter().zip(full).any(|(s, f)| s > f) {
        return None;
    }
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let rank = shape.len();
    // Row-major strides of the full tensor.
    let mut strides = vec![1usize; rank];
    for d in (0..rank.saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * full[d + 1];
    }
    let mut idx = vec![0usize; rank];
    for _ in 0..n {
        let offset: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(data[offset]);
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Some(out)
}

struct Collect {
    path: Vec<String>,
    out: HashMap<String, (Vec<usize>, Vec<f32>)>,
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

struct Inherit<'a> {
    teacher: &'a TeacherWeights,
    path: Vec<String>,
    stats: InheritStats,
}

impl<B: Backend> ModuleMapper<B> for Inherit<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let values = self
            .teacher
            .tensors
            .get(&self.path.join("."))
            .and_then(|(full, data)| {
                let exact = full.as_slice() == dims.as_slice();
                leading_slice(data, full, &dims).map(|v| (v, exact))
            });
        let tensor = match values {
            Some((v, exact)) => {
                if exact {
                    self.stats.copied += 1;
                } else {
                    self.stats.sliced += 1;
                }
                // Keep the parameter trainable (the new leaf must require gradients when the
                // initialised one did).
                Tensor::from_data(TensorData::new(v, dims), &tensor.device())
                    .set_require_grad(tensor.is_require_grad())
            }
            None => {
                self.stats.fresh += 1;
                tensor
            }
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_slice_takes_first_rows_and_columns() {
        // 2x3 matrix [[0,1,2],[3,4,5]] -> leading 2x2 = [[0,1],[3,4]].
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(
            leading_slice(&data, &[2, 3], &[2, 2]),
            Some(vec![0.0, 1.0, 3.0, 4.0])
        );
        assert_eq!(
            leading_slice(&data, &[2, 3], &[1, 3]),
            Some(vec![0.0, 1.0, 2.0])
        );
        assert_eq!(leading_slice(&data, &[2, 3], &[2, 3]), Some(data.clone()));
        // Wider or another rank: nothing to inherit.
        assert_eq!(leading_slice(&data, &[2, 3], &[3, 3]), None);
        assert_eq!(leading_slice(&data, &[2, 3], &[6]), None);
    }

    #[test]
    fn leading_slice_of_a_conv_kernel() {
        // [out 2, in 2, 1, 2]: values = 4*o + 2*i + k.
        let data: Vec<f32> = (0..8).map(|v| v as f32).collect();
        assert_eq!(
            leading_slice(&data, &[2, 2, 1, 2], &[1, 2, 1, 2]),
            Some(vec![0.0, 1.0, 2.0, 3.0])
        );
        assert_eq!(
            leading_slice(&data, &[2, 2, 1, 2], &[2, 1, 1, 2]),
            Some(vec![0.0, 1.0, 4.0, 5.0])
        );
    }
}
