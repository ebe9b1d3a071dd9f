//! Weight inheritance from a teacher U-Net, by role: the same architecture inherits every
//! tensor; another depth or layout inherits each module from the teacher module that plays the
//! same role — never the one at the same position in the module list — where shapes are
//! identical, and keeps its own initialisation elsewhere.

use unas_evaluator::quality::train::init_seeded;
use unas_runtime::device::Cpu;
use unas_runtime::{RoleWeights, UNet2DConditionModel};
use unas_space::{preset, Role, UNetArch};

fn model(arch: &UNetArch, seed: u64) -> UNet2DConditionModel<Cpu> {
    let device = Default::default();
    init_seeded::<Cpu, _>(&device, seed, || {
        UNet2DConditionModel::<Cpu>::init(arch, &device).unwrap()
    })
}

#[test]
fn same_architecture_inherits_every_tensor() {
    let arch = preset("tiny-nas");
    let teacher = RoleWeights::from_unet(&arch, &model(&arch, 1)).unwrap();
    let student = model(&arch, 2);
    let before = RoleWeights::from_unet(&arch, &student).unwrap();
    let (student, stats) = teacher.inherit(&arch, student).unwrap();
    assert_eq!((stats.copied, stats.fresh), (teacher.len(), 0));
    let after = RoleWeights::from_unet(&arch, &student).unwrap();
    let mut differed = 0;
    for path in teacher.paths() {
        assert_eq!(after.get(path), teacher.get(path), "{path}");
        differed += usize::from(before.get(path) != teacher.get(path));
    }
    // The two seeds really differed before inheritance.
    assert!(differed > teacher.len() / 2, "{differed}");
}

/// Teacher `tiny` (diffusers layout, 4 stages) → student `tiny-nas` (flexible, 3 stages,
/// other block depths): plan index 3 is an attention in one and a ResNet in the other, so a
/// positional mapping pairs unrelated modules. Every student tensor must equal the tensor of
/// the teacher module with the same role and the same parameter path inside it, or keep its
/// initialisation when there is none of that shape.
#[test]
fn another_architecture_inherits_by_role_not_by_position() {
    let (t_arch, s_arch) = (preset("tiny"), preset("tiny-nas"));
    let teacher = RoleWeights::from_unet(&t_arch, &model(&t_arch, 1)).unwrap();
    let student = model(&s_arch, 2);
    let before = RoleWeights::from_unet(&s_arch, &student).unwrap();
    let (student, stats) = teacher.inherit(&s_arch, student).unwrap();
    let after = RoleWeights::from_unet(&s_arch, &student).unwrap();
    assert_eq!(stats.copied + stats.fresh, after.len());

    let t_plan = t_arch.plan().unwrap();
    let t_roles = t_plan.roles(t_arch.stages());
    let s_plan = s_arch.plan().unwrap();
    let s_roles: Vec<Role> = s_plan.roles(s_arch.stages());
    let (mut copied, mut fresh, mut moved) = (0, 0, 0);
    for path in after.paths() {
        let parts: Vec<&str> = path.splitn(3, '.').collect();
        let i: usize = parts[1].parse().unwrap();
        let source = t_roles
            .iter()
            .position(|r| *r == s_roles[i])
            .map(|j| format!("blocks.{j}.{}", parts[2]))
            .and_then(|p| teacher.get(&p).map(|t| (p, t)))
            .filter(|(_, (shape, _))| Some(*shape) == after.get(path).map(|a| a.0));
        match source {
            Some((p, t)) => {
                assert_eq!(after.get(path), Some(t), "{path} ({}) from {p}", s_roles[i]);
                copied += 1;
                moved += usize::from(p != path);
            }
            None => {
                assert_eq!(after.get(path), before.get(path), "{path} kept fresh");
                fresh += 1;
            }
        }
    }
    assert_eq!((copied, fresh), (stats.copied, stats.fresh));
    // Most tensors come from a module at another position: the positional mapping would
    // have paired them with the wrong module (or none).
    assert!(moved > copied / 2, "{moved} of {copied} moved");
    // The attention of down stage 1 is one of them: block 6 in tiny-nas (R R ds | R A R),
    // block 8 in tiny (R A R A ds | R A R A): both `down 1 attention 0`.
    let key = |plan: &unas_space::Plan, k: &str| plan.modules.iter().position(|m| m.key == k);
    let s_att = key(&s_plan, "down_blocks.1.modules_list.1").unwrap();
    let t_att = key(&t_plan, "down_blocks.1.attentions.0").unwrap();
    assert_eq!(s_roles[s_att], t_roles[t_att]);
    assert_ne!(s_att, t_att);
    let p = |b: usize| format!("blocks.{b}.Attention.norm.gamma");
    assert!(after.get(&p(s_att)).is_some(), "{}", p(s_att));
    assert_eq!(after.get(&p(s_att)), teacher.get(&p(t_att)));
}

#[test]
fn inherited_parameters_stay_trainable() {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::Tensor;
    type Train = burn::backend::Autodiff<Cpu>;
    struct Count(usize, usize);
    impl<B: AutodiffBackend> ModuleVisitor<B> for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0 += 1;
            self.1 += usize::from(param.val().is_require_grad());
        }
    }
    let t_arch = preset("tiny");
    let teacher = RoleWeights::from_unet(&t_arch, &model(&t_arch, 1)).unwrap();
    let arch = preset("tiny-nas");
    let device = Default::default();
    let student = init_seeded::<Train, _>(&device, 2, || {
        UNet2DConditionModel::<Train>::init(&arch, &device).unwrap()
    });
    let (student, stats) = teacher.inherit(&arch, student).unwrap();
    assert!(stats.copied > 0);
    let mut count = Count(0, 0);
    student.visit(&mut count);
    assert_eq!(
        count.0, count.1,
        "every parameter must still require gradients"
    );
}
