//! Weight inheritance between U-Nets of one family, matched by role ([`unas_space::role`]):
//! every parameter of a student module starts from the teacher module that plays the same
//! role (same section, kind and index; an up stage's cross-skip ResNet from the teacher's), when
//! the tensor's shape is identical; everything else keeps the student's initialisation. No
//! slicing: a narrower tensor is not an exact piece of a wider one (a ResNet's first conv reads
//! `cat([h, skip])`, attention projections are per head, GroupNorm statistics are per group),
//! so a width change starts fresh. BK-SDM initialises its students this way (copy the blocks
//! that remain); SnapFusion and once-for-all supernets share the same roles.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use unas_space::{Role, UNetArch};

use crate::error::RuntimeError;
use crate::unet::model::UNet2DConditionModel;

/// The float parameters of a U-Net by burn module path (`blocks.{i}.{Variant}.…`), with the
/// role of every block, on the host.
#[derive(Clone, Debug)]
pub struct RoleWeights {
    roles: HashMap<Role, usize>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// How many parameter tensors of a student were copied from the teacher or kept fresh.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InheritStats {
    /// A teacher module with the same role has this tensor with the same shape: copied.
    pub copied: usize,
    /// No module with that role in the teacher, or another shape: left as initialised.
    pub fresh: usize,
}

impl RoleWeights {
    /// Reads every float parameter of `unet`, the U-Net of `arch`.
    pub fn from_unet<B: Backend>(
        arch: &UNetArch,
        unet: &UNet2DConditionModel<B>,
    ) -> Result<Self, RuntimeError> {
        let plan = arch.plan()?;
        if plan.modules.len() != unet.blocks.len() {
            return Err(RuntimeError::Input(format!(
                "the U-Net has {} blocks, arch `{}` has {}",
                unet.blocks.len(),
                arch.name,
                plan.modules.len()
            )));
        }
        let roles = plan
            .roles(arch.stages())
            .into_iter()
            .enumerate()
            .map(|(i, r)| (r, i))
            .collect();
        Ok(Self {
            roles,
            tensors: crate::save::float_params(unet),
        })
    }

    /// The tensor at module path `path`: shape and row-major values.
    pub fn get(&self, path: &str) -> Option<(&[usize], &[f32])> {
        self.tensors
            .get(path)
            .map(|(s, v)| (s.as_slice(), v.as_slice()))
    }

    /// The teacher's block index playing `role`.
    pub fn block_of(&self, role: &Role) -> Option<usize> {
        self.roles.get(role).copied()
    }

    /// All module paths held.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors held.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when no parameter is held.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// `unet` (the U-Net of `arch`) with every parameter that has a same-role, same-shape
    /// teacher tensor replaced by it, and the counts. Parameters stay trainable.
    pub fn inherit<B: Backend>(
        &self,
        arch: &UNetArch,
        unet: UNet2DConditionModel<B>,
    ) -> Result<(UNet2DConditionModel<B>, InheritStats), RuntimeError> {
        let plan = arch.plan()?;
        let source: Vec<Option<usize>> = plan
            .roles(arch.stages())
            .iter()
            .map(|r| self.block_of(r))
            .collect();
        if source.len() != unet.blocks.len() {
            return Err(RuntimeError::Input(format!(
                "the U-Net has {} blocks, arch `{}` has {}",
                unet.blocks.len(),
                arch.name,
                source.len()
            )));
        }
        let mut m = Inherit {
            teacher: self,
            source,
            path: Vec::new(),
            stats: InheritStats::default(),
        };
        let unet = unet.map(&mut m);
        Ok((unet, m.stats))
    }
}

struct Inherit<'a> {
    teacher: &'a RoleWeights,
    source: Vec<Option<usize>>,
    path: Vec<String>,
    stats: InheritStats,
}

impl Inherit<'_> {
    /// The teacher path of the current student path: `blocks.{i}.rest` → `blocks.{j}.rest`
    /// with `j` the teacher block of block `i`'s role.
    fn teacher_path(&self) -> Option<String> {
        match self.path.as_slice() {
            [blocks, i, rest @ ..] if blocks == "blocks" => {
                let j = self
                    .source
                    .get(i.parse::<usize>().ok()?)
                    .copied()
                    .flatten()?;
                let mut p = vec![blocks.clone(), j.to_string()];
                p.extend(rest.iter().cloned());
                Some(p.join("."))
            }
            _ => None,
        }
    }
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
            .teacher_path()
            .and_then(|p| self.teacher.tensors.get(&p))
            .filter(|(shape, _)| shape.as_slice() == dims.as_slice());
        let tensor = match values {
            Some((_, v)) => {
                self.stats.copied += 1;
                // A new leaf must require gradients when the initialised one did.
                Tensor::from_data(TensorData::new(v.clone(), dims), &tensor.device())
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
