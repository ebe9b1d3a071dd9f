//! Initialising an architecture as the sub-network of a freshly initialised covering network:
//! common random numbers in the initialisation of from-scratch trainings.

use burn::tensor::backend::Backend;
use unas_runtime::{SubNet, UNet2DConditionModel};
use unas_space::{SearchSpace, UNetArch};

use super::train::init_seeded;
use crate::EvalError;

/// `arch` (an architecture of `space`) initialised as the sub-network of its topology's
/// covering architecture, freshly initialised from `seed` with the standalone initialisation
/// (no zeroed outputs): every module of `arch` holds the covering module of its role, so all
/// architectures of one seed start from the same tensors wherever they have the same module.
/// Depth is the only elastic dimension of a topology, so each module has the shape, and thus
/// the initial distribution, it has in a standalone `arch`.
pub fn covering_init<B: Backend>(
    space: &SearchSpace,
    arch: &UNetArch,
    seed: u64,
    device: &B::Device,
) -> Result<UNet2DConditionModel<B>, EvalError> {
    let genome = space.encode(arch).ok_or_else(|| {
        EvalError::Unsupported(format!(
            "`{}` is not an architecture of the space `{}`: it has no covering network there",
            arch.name, space.name
        ))
    })?;
    let cover = space.supernet_arch(&space.topology(&genome));
    let plan = cover.plan()?;
    let unet = init_seeded::<B, _>(device, seed, || {
        UNet2DConditionModel::<B>::from_plan(&cover, &plan, device)
    });
    Ok(SubNet::new(arch, &cover)?.extract(&unet))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::Tensor;
    use unas_runtime::device::Cpu;
    use unas_space::rng::Rng;

    /// All float parameters of a module, flattened, in visiting order.
    fn params(m: &UNet2DConditionModel<Cpu>) -> Vec<Vec<f32>> {
        struct All(Vec<Vec<f32>>);
        impl burn::module::ModuleVisitor<Cpu> for All {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<Cpu, D>>) {
                self.0
                    .push(p.val().into_data().to_vec::<f32>().expect("f32"));
            }
        }
        let mut v = All(Vec::new());
        m.visit(&mut v);
        v.0
    }

    #[test]
    fn two_architectures_of_one_seed_share_the_modules_they_both_have() {
        let space = SearchSpace::load("tiny-depth").expect("preset");
        let device = Default::default();
        let mut rng = Rng::seed(7);
        let t = space.topologies()[0].clone();
        let cover = space.supernet_arch(&t);
        let small = space.smallest_arch(&t).expect("smallest");
        let other = space.sample_in(&t, &mut rng, 200).expect("a sample");
        let a = covering_init::<Cpu>(&space, &small, 3, &device).expect("init");
        let b = covering_init::<Cpu>(&space, &other, 3, &device).expect("init");
        // The covering architecture itself gets exactly its standalone initialisation.
        let c = covering_init::<Cpu>(&space, &cover, 3, &device).expect("init");
        let plan = cover.plan().expect("plan");
        let standalone = init_seeded::<Cpu, _>(&device, 3, || {
            UNet2DConditionModel::<Cpu>::from_plan(&cover, &plan, &device)
        });
        assert_eq!(params(&c), params(&standalone));
        // Every module of the smallest is in the other: the input and output layers (first
        // and last parameters) are the same tensors, and so is each tensor of the smallest
        // found among the other's.
        let (pa, pb) = (params(&a), params(&b));
        assert_eq!(pa.first(), pb.first());
        assert_eq!(pa.last(), pb.last());
        assert!(pa.iter().all(|p| pb.contains(p)));
        assert!(pa.len() < pb.len() || small == other);
        // Another seed, other tensors.
        let d = covering_init::<Cpu>(&space, &small, 4, &device).expect("init");
        assert_ne!(params(&d).first(), pa.first());
    }

    #[test]
    fn an_architecture_outside_the_space_is_refused() {
        let space = SearchSpace::load("tiny-depth").expect("preset");
        let mut arch = space.supernet_arch(&space.topologies()[0]);
        arch.stem.time_embed_dim += 1;
        assert!(space.encode(&arch).is_none());
        let e = covering_init::<Cpu>(&space, &arch, 0, &Default::default()).unwrap_err();
        assert!(
            e.to_string().contains("not an architecture of the space"),
            "{e}"
        );
    }
}
