//! Weight-sharing supernets: one U-Net (the covering architecture of a family) whose modules
//! every sub-network of the family runs on, matched by role ([`unas_space::role`]): a
//! sub-network keeps the first k ResNets and first m attentions of each block, the cross-skip
//! ResNet of each up stage, and possibly fewer stages. A [`SubNet`] holds no tensors: its
//! forward pass runs the supernet's own modules, so gradients of a sub-network step land in
//! the supernet's parameters (BigNAS / OFA-style weight sharing).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use unas_space::{Plan, RoleMap, Step, UNetArch};

use crate::error::RuntimeError;
use crate::unet::model::UNet2DConditionModel;

/// A sub-network of a supernet: which supernet module plays each of its modules, and its own
/// forward steps over them.
#[derive(Clone, Debug)]
pub struct SubNet {
    arch: UNetArch,
    plan: Plan,
    /// Supernet block index of every module of `plan`, in plan order.
    modules: Vec<usize>,
    /// `plan.steps` with `module` rewritten to supernet block indices.
    steps: Vec<Step>,
}

impl SubNet {
    /// The sub-network `arch` of the supernet whose covering architecture is `supernet`.
    /// Fails, naming the module, when some module of `arch` has no same-role, same-shape
    /// counterpart in `supernet`.
    pub fn new(arch: &UNetArch, supernet: &UNetArch) -> Result<Self, RuntimeError> {
        let map = RoleMap::new(arch, supernet)?;
        map.check_subnetwork(arch, supernet)?;
        let modules: Vec<usize> = map.to_super.iter().map(|j| j.expect("checked")).collect();
        let plan = arch.plan()?;
        let steps = plan
            .steps
            .iter()
            .map(|s| Step {
                module: modules[s.module],
                ..s.clone()
            })
            .collect();
        Ok(Self {
            arch: arch.clone(),
            plan,
            modules,
            steps,
        })
    }

    /// The sub-network's architecture.
    pub fn arch(&self) -> &UNetArch {
        &self.arch
    }

    /// Supernet block index of each of the sub-network's modules (plan order).
    pub fn modules(&self) -> &[usize] {
        &self.modules
    }

    /// The sub-network's prediction, computed with the supernet's modules.
    ///
    /// - sample: `[batch, in_channels, h, w]` (h, w divisible by the sub-network's
    ///   downsampling factor)
    /// - timesteps: `[batch]` or `[1]`
    /// - context: `[batch, text_len, cross_attention_dim]`
    /// - output: `[batch, out_channels, h, w]`
    pub fn forward<B: Backend>(
        &self,
        supernet: &UNet2DConditionModel<B>,
        sample: Tensor<B, 4>,
        timesteps: Tensor<B, 1>,
        context: Tensor<B, 3>,
    ) -> Tensor<B, 4> {
        let mut state = supernet.start(sample, timesteps, context);
        for step in &self.steps {
            supernet.run_step(step, &mut state);
        }
        state.hidden
    }

    /// The sub-network as a standalone U-Net of its architecture (diffusers weight keys of
    /// `arch`), holding the supernet's modules (burn tensors are shared, not copied, until one
    /// side is updated).
    pub fn extract<B: Backend>(
        &self,
        supernet: &UNet2DConditionModel<B>,
    ) -> UNet2DConditionModel<B> {
        let blocks = self
            .modules
            .iter()
            .map(|&j| supernet.blocks[j].clone())
            .collect();
        UNet2DConditionModel::from_blocks(&self.arch, &self.plan, blocks)
    }
}
