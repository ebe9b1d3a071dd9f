//! Weight inheritance from a teacher U-Net: the same architecture inherits every tensor
//! exactly; a narrower / shallower one inherits the leading sub-tensor at every shared path
//! and keeps its own initialisation elsewhere.

use unas_evaluator::quality::inherit::{leading_slice, TeacherWeights};
use unas_evaluator::quality::train::init_seeded;
use unas_runtime::device::Cpu;
use unas_runtime::UNet2DConditionModel;
use unas_space::preset;

fn model(name: &str, seed: u64) -> UNet2DConditionModel<Cpu> {
    let arch = preset(name);
    let device = Default::default();
    init_seeded::<Cpu, _>(&device, seed, || {
        UNet2DConditionModel::<Cpu>::init(&arch, &device).unwrap()
    })
}

#[test]
fn same_architecture_inherits_every_tensor() {
    let teacher = TeacherWeights::from_module(&model("tiny-nas", 1));
    let student = model("tiny-nas", 2);
    let before = TeacherWeights::from_module(&student);
    let (student, stats) = teacher.inherit(student);
    assert_eq!(stats.copied, teacher.len());
    assert_eq!((stats.sliced, stats.fresh), (0, 0));
    let after = TeacherWeights::from_module(&student);
    let mut differed = 0;
    for path in teacher.paths() {
        assert_eq!(after.get(path), teacher.get(path), "{path}");
        differed += usize::from(before.get(path) != teacher.get(path));
    }
    // The two seeds really differed before inheritance.
    assert!(differed > teacher.len() / 2, "{differed}");
}

#[test]
fn other_architecture_inherits_leading_slices_where_paths_match() {
    let teacher = TeacherWeights::from_module(&model("tiny", 1));
    let student = model("tiny-nas", 2);
    let before = TeacherWeights::from_module(&student);
    let (student, stats) = teacher.inherit(student);
    let after = TeacherWeights::from_module(&student);
    assert_eq!(stats.copied + stats.sliced + stats.fresh, after.len());
    assert!(stats.copied > 0, "{stats:?}");
    let (mut copied, mut sliced, mut fresh) = (0, 0, 0);
    for path in after.paths() {
        let (shape, values) = after.get(path).unwrap();
        match teacher
            .get(path)
            .and_then(|(full, data)| leading_slice(data, full, shape).map(|v| (full, v)))
        {
            Some((full, expected)) => {
                assert_eq!(values, expected.as_slice(), "{path}");
                if full == shape {
                    copied += 1;
                } else {
                    sliced += 1;
                }
            }
            None => {
                assert_eq!(Some((shape, values)), before.get(path), "{path}");
                fresh += 1;
            }
        }
    }
    assert_eq!(
        (copied, sliced, fresh),
        (stats.copied, stats.sliced, stats.fresh)
    );
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
    let teacher = TeacherWeights::from_module(&model("tiny", 1));
    let arch = preset("tiny-nas");
    let device = Default::default();
    let student = init_seeded::<Train, _>(&device, 2, || {
        UNet2DConditionModel::<Train>::init(&arch, &device).unwrap()
    });
    let (student, stats) = teacher.inherit(student);
    assert!(stats.copied + stats.sliced > 0);
    let mut count = Count(0, 0);
    student.visit(&mut count);
    assert_eq!(
        count.0, count.1,
        "every parameter must still require gradients"
    );
}
