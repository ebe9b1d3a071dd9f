//! Weight-sharing supernets: a sub-network's forward pass over the supernet's modules equals a
//! standalone U-Net of the sub-network's architecture holding the weights copied by role, and
//! the gradients of a sub-network step land in exactly the supernet parameters it used.

use std::collections::BTreeSet;

use burn::backend::Autodiff;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, ElementConversion, Tensor};
use unas_runtime::device::Cpu;
use unas_runtime::{RoleWeights, SubNet, UNet2DConditionModel};
use unas_space::rng::Rng;
use unas_space::{SearchSpace, Topology, UNetArch};

type Train = Autodiff<Cpu>;

fn space() -> SearchSpace {
    SearchSpace::load("tiny").unwrap()
}

/// Candidates of one topology: sampled ones, the smallest and the covering architecture.
fn candidates(space: &SearchSpace, t: &Topology, n: usize) -> Vec<UNetArch> {
    let mut rng = Rng::seed(11);
    let mut out: Vec<UNetArch> = (0..n)
        .map(|_| space.sample_in(t, &mut rng, 10_000).unwrap())
        .collect();
    out.push(space.smallest_arch(t).unwrap());
    out.push(space.supernet_arch(t));
    out
}

fn inputs<B: Backend>(device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 3>) {
    B::seed(device, 5);
    (
        Tensor::random([2, 4, 16, 16], Distribution::Normal(0.0, 1.0), device),
        Tensor::from_floats([17.0, 503.0], device),
        Tensor::random([2, 16, 64], Distribution::Normal(0.0, 1.0), device),
    )
}

#[test]
fn subnetwork_forward_equals_standalone_with_weights_copied_by_role() {
    let space = space();
    let device = Default::default();
    for t in space
        .topologies()
        .iter()
        .filter(|t| t.widths == [32, 64, 64, 64])
    {
        let sup_arch = space.supernet_arch(t);
        let supernet = UNet2DConditionModel::<Cpu>::init_materialized(&sup_arch, &device).unwrap();
        let weights = RoleWeights::from_unet(&sup_arch, &supernet).unwrap();
        let (x, ts, ctx) = inputs::<Cpu>(&device);
        let mut three_stage = false;
        for arch in candidates(&space, t, 4) {
            let sub = SubNet::new(&arch, &sup_arch).unwrap();
            let shared = sub.forward(&supernet, x.clone(), ts.clone(), ctx.clone());
            // An independently initialised standalone U-Net of the candidate, every tensor
            // replaced by its supernet counterpart by role.
            let standalone =
                UNet2DConditionModel::<Cpu>::init_materialized(&arch, &device).unwrap();
            let (standalone, stats) = weights.inherit(&arch, standalone).unwrap();
            assert_eq!(stats.fresh, 0, "{t}: every tensor has a counterpart");
            let alone = standalone.forward(x.clone(), ts.clone(), ctx.clone());
            let diff = (shared.clone() - alone).abs().max().into_scalar();
            assert!(diff <= 1e-5, "{t} {}: max |diff| {diff}", arch.name);
            // The extracted standalone (shared tensors) gives the same bits.
            let extracted = sub.extract(&supernet);
            let d2 = (shared - extracted.forward(x.clone(), ts.clone(), ctx.clone()))
                .abs()
                .max()
                .into_scalar();
            assert_eq!(d2, 0.0);
            three_stage |= arch.stages() == 3;
        }
        assert!(three_stage, "{t}: a 3-stage candidate was checked");
    }
}

/// Supernet block index of every float parameter that has a gradient, and of every one.
struct Blocks<'a> {
    path: Vec<String>,
    grads: &'a GradientsParams,
    with_grad: BTreeSet<usize>,
    all: BTreeSet<usize>,
}

impl<B: burn::tensor::backend::AutodiffBackend> ModuleVisitor<B> for Blocks<'_> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let block: usize = self.path[1].parse().unwrap();
        self.all.insert(block);
        if self
            .grads
            .get::<B::InnerBackend, D>(param.id)
            .is_some_and(|g| g.abs().sum().into_scalar().elem::<f64>() > 0.0)
        {
            self.with_grad.insert(block);
        }
    }
}

#[test]
fn gradients_of_a_subnetwork_land_in_the_supernet_parameters_it_uses() {
    let space = space();
    let device = Default::default();
    let t = space
        .topologies()
        .into_iter()
        .find(|t| t.widths == [32, 64, 64, 64] && t.layout == unas_space::Layout::Flexible)
        .unwrap();
    let sup_arch = space.supernet_arch(&t);
    let supernet = UNet2DConditionModel::<Train>::init_materialized(&sup_arch, &device).unwrap();
    let arch = space.smallest_arch(&t).unwrap();
    let sub = SubNet::new(&arch, &sup_arch).unwrap();
    let (x, ts, ctx) = inputs::<Train>(&device);
    let loss = sub.forward(&supernet, x, ts, ctx).powi_scalar(2).mean();
    let grads = GradientsParams::from_grads(loss.backward(), &supernet);
    let mut v = Blocks {
        path: Vec::new(),
        grads: &grads,
        with_grad: BTreeSet::new(),
        all: BTreeSet::new(),
    };
    supernet.visit(&mut v);
    let used: BTreeSet<usize> = sub.modules().iter().copied().collect();
    assert_eq!(
        v.with_grad, used,
        "gradients reach exactly the shared modules"
    );
    assert!(
        used.len() < v.all.len(),
        "the candidate is a proper sub-network"
    );
}
