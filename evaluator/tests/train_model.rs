//! Training one architecture (`unas train`'s library): an interrupted and resumed run ends
//! with the same weights and losses as an uninterrupted one, with a teacher distilling into
//! it; the feature loss compares only the sections both networks have with the same shape; a
//! student that starts as its teacher has zero output loss; a diverging run stops naming the
//! step and keeps its last checkpoint.

use std::path::Path;

use burn::backend::Autodiff;
use unas_evaluator::quality::supernet::TrainData;
use unas_evaluator::quality::train::init_seeded;
use unas_evaluator::quality::train_model::{
    section_outputs, train_model, DistillWeights, ModelTrainSettings, Teacher, TrainedModel,
};
use unas_evaluator::EvalError;
use unas_runtime::device::Cpu;
use unas_runtime::{RoleWeights, UNet2DConditionModel};
use unas_space::{RoleSection, SearchSpace, UNetArch};

mod small;

use small::{cache, space};

type Train = Autodiff<Cpu>;

/// The largest 3-stage and the smallest 2-stage architecture of the space (one topology: the
/// stage count is elastic within it).
fn teacher_and_student(space: &SearchSpace) -> (UNetArch, UNetArch) {
    let ts = space.topologies();
    assert_eq!(ts.len(), 1, "{ts:?}");
    let (teacher, student) = (
        space.supernet_arch(&ts[0]),
        space.smallest_arch(&ts[0]).unwrap(),
    );
    assert_eq!((teacher.stages(), student.stages()), (3, 2));
    (teacher, student)
}

/// A randomly initialised U-Net of `arch` (from `seed`) and its role-addressed weights.
fn random_unet(arch: &UNetArch, seed: u64) -> (UNet2DConditionModel<Cpu>, RoleWeights) {
    let device = Default::default();
    let unet = init_seeded::<Cpu, _>(&device, seed, || {
        UNet2DConditionModel::init(arch, &device).unwrap()
    });
    let weights = RoleWeights::from_unet(arch, &unet).unwrap();
    (unet, weights)
}

fn settings() -> ModelTrainSettings {
    let mut s = ModelTrainSettings {
        steps: 12,
        batch: 2,
        checkpoint_every: 4,
        ..ModelTrainSettings::default()
    };
    // An EMA over the last 11 of 12 steps, so the interrupted run's checkpoint holds one.
    s.recipe.ema_fraction = 0.84;
    s.recipe.warmup_steps = 2;
    s
}

fn weights_equal(arch: &UNetArch, a: &TrainedModel<Cpu>, b: &TrainedModel<Cpu>) {
    let (wa, wb) = (
        RoleWeights::from_unet(arch, &a.unet).unwrap(),
        RoleWeights::from_unet(arch, &b.unet).unwrap(),
    );
    for p in wa.paths() {
        assert_eq!(wa.get(p), wb.get(p), "{p}");
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    arch: &UNetArch,
    data: &TrainData,
    s: &ModelTrainSettings,
    init: Option<(&RoleWeights, &str)>,
    teacher: Option<&Teacher<Cpu>>,
    dir: &Path,
    stop: Option<usize>,
) -> Result<TrainedModel<Cpu>, EvalError> {
    train_model::<Train>(
        arch,
        data,
        "random",
        s,
        init,
        teacher,
        dir,
        &Default::default(),
        stop,
        &mut |_| {},
    )
}

#[test]
fn resumed_distillation_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let (space, cache) = (space(), cache());
    let uncond = vec![0.0; 64];
    let data = TrainData {
        cache: &cache,
        uncond: &uncond,
        train_items: 32,
    };
    let (t_arch, arch) = teacher_and_student(&space);
    let (t_unet, tw) = random_unet(&t_arch, 7);
    let teacher = Teacher {
        arch: &t_arch,
        unet: &t_unet,
        label: "random teacher",
    };
    let init = Some((&tw, "random teacher"));
    let s = settings();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let whole = run(&arch, &data, &s, init, Some(&teacher), a.path(), None).unwrap();
    assert_eq!(whole.steps_run, 12);
    let stats = whole.inherited.unwrap();
    assert!(stats.copied > 0, "{stats:?}");
    // The 2-stage student and the 3-stage teacher (flexible layout: every down block
    // downsamples, the mid block upsamples) agree in shape at their first two down blocks and
    // the up blocks that mirror them; their mid blocks run at other resolutions.
    assert_eq!(
        whole.feature_sections,
        [
            "down 0",
            "down 1",
            "up (mirrors down 1)",
            "up (mirrors down 0)"
        ]
    );
    // Interrupted after 6 steps: the last checkpoint is step 4, so steps 5 and 6 are redone.
    let part = run(&arch, &data, &s, init, Some(&teacher), b.path(), Some(6)).unwrap();
    assert_eq!(part.steps_run, 6);
    let rest = run(&arch, &data, &s, init, Some(&teacher), b.path(), None).unwrap();
    assert_eq!(rest.steps_run, 8, "resumed from the step-4 checkpoint");
    assert_eq!(rest.losses, whole.losses);
    weights_equal(&arch, &whole, &rest);
    // A finished run resumes to nothing.
    let again = run(&arch, &data, &s, init, Some(&teacher), a.path(), None).unwrap();
    assert_eq!(again.steps_run, 0);
    weights_equal(&arch, &whole, &again);

    // Without the teacher the run is another one: its checkpoints are refused.
    let err = run(&arch, &data, &s, init, None, a.path(), None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("latest.json") && err.contains("other settings"),
        "{err}"
    );
    // The teacher's terms are in the loss: without them the losses differ.
    let c = tempfile::tempdir().unwrap();
    let plain = run(&arch, &data, &s, init, None, c.path(), None).unwrap();
    assert_ne!(plain.losses, whole.losses);
}

#[test]
fn section_outputs_follow_the_forward_order() {
    let (t_arch, arch) = teacher_and_student(&space());
    let names = |a: &UNetArch| -> Vec<RoleSection> {
        section_outputs(a)
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect()
    };
    use RoleSection::*;
    assert_eq!(names(&arch), vec![Down(0), Down(1), Mid, Up(1), Up(0)]);
    assert_eq!(
        names(&t_arch),
        vec![Down(0), Down(1), Down(2), Mid, Up(2), Up(1), Up(0)]
    );
    let steps = section_outputs(&arch).unwrap();
    assert!(steps.windows(2).all(|w| w[0].1 < w[1].1), "{steps:?}");
}

#[test]
fn a_student_that_starts_as_its_teacher_has_no_output_loss() {
    let (space, cache) = (space(), cache());
    let uncond = vec![0.0; 64];
    let data = TrainData {
        cache: &cache,
        uncond: &uncond,
        train_items: 32,
    };
    let (arch, _) = teacher_and_student(&space);
    let (t_unet, tw) = random_unet(&arch, 3);
    let teacher = Teacher {
        arch: &arch,
        unet: &t_unet,
        label: "itself",
    };
    let mut s = settings();
    s.distill = DistillWeights {
        task: 0.0,
        output: 1.0,
        feature: 1.0,
    };
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &arch,
        &data,
        &s,
        Some((&tw, "itself")),
        Some(&teacher),
        dir.path(),
        Some(1),
    )
    .unwrap();
    let stats = out.inherited.unwrap();
    assert_eq!(stats.fresh, 0, "{stats:?}");
    assert_eq!(out.feature_sections.len(), 7);
    assert!(out.losses[0].abs() < 1e-9, "{}", out.losses[0]);
}

#[test]
fn a_diverging_run_names_the_step_and_keeps_its_checkpoint() {
    let (space, cache) = (space(), cache());
    let uncond = vec![0.0; 64];
    let data = TrainData {
        cache: &cache,
        uncond: &uncond,
        train_items: 32,
    };
    let (_, arch) = teacher_and_student(&space);
    let mut s = settings();
    s.checkpoint_every = 1;
    s.recipe.lr = 1e30;
    s.recipe.warmup_steps = 0;
    s.recipe.max_grad_norm = None;
    let dir = tempfile::tempdir().unwrap();
    let err = run(&arch, &data, &s, None, None, dir.path(), None)
        .err()
        .expect("an lr of 1e30 diverges");
    let msg = err.to_string();
    assert!(
        msg.contains("at step") && msg.contains("last good checkpoint"),
        "{msg}"
    );
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("latest.json")).unwrap())
            .unwrap();
    let step = latest["step"].as_u64().unwrap();
    assert!(
        step >= 1 && msg.contains(&format!("(step {step})")),
        "{msg} / {latest}"
    );
    assert!(dir.path().join(format!("step-{step}")).is_dir());
}
