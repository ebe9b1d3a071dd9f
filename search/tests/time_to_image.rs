//! A time-to-image study (`latency.objective = "image"`): the sampling step count is a knob
//! beside the blocks, latency is per image (text encoder + steps × U-Net step + VAE decode from
//! the A10G roofline), references run at the largest step count. Quality comes from the
//! synthetic TEST FIXTURE (not a quality metric).

use unas_evaluator::latency::profile::DeviceProfile;
use unas_evaluator::latency::LatencyModel;
use unas_search::fixture::{tiny_study, SyntheticQuality};
use unas_search::{ControllerConfig, Evaluators, LatencyObjective, Study, TrialStatus};

#[test]
fn steps_are_a_knob_and_latency_is_per_image() {
    let profile = DeviceProfile::load("a10g").unwrap();
    let mut cfg = tiny_study(
        "tti",
        ControllerConfig::Aging {
            population: 6,
            sample: 3,
        },
        20,
        3,
    );
    cfg.latency.objective = LatencyObjective::Image;
    cfg.latency.sampling_steps = vec![10, 20, 50];
    cfg.references = vec!["tiny-nas".into()];
    cfg.check().unwrap();
    cfg.resolve_image_parts(&profile, &mut |_| panic!("a profile prices the pipeline"))
        .unwrap()
        .expect("resolved");
    let parts = cfg.latency.image_parts.clone().unwrap();
    assert!(parts.fixed_ms > 0.0 && parts.step_extra_ms > 0.0 && parts.images == 1);
    // A per-image budget that some of the space meets.
    cfg.latency.budget_quantile = Some(0.5);
    cfg.latency.budget_ms = 0.0;
    let space = cfg.load_space().unwrap();
    assert_eq!(space.knobs.sampling_steps, vec![10, 20, 50]);
    let budget = cfg.resolve_budget(&space, &profile).unwrap().unwrap();
    assert!(budget > parts.fixed_ms, "{budget} ms per image");

    let q = SyntheticQuality::default();
    let ev = Evaluators {
        latency: &profile,
        quality: &q,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut study = Study::create(dir.path(), cfg.clone()).unwrap();
    study.run(ev, &mut |_| {}).unwrap();
    let trials = study.trials().unwrap();
    assert_eq!(trials.len(), 20);
    let setting = cfg.latency.setting();
    let mut steps_seen = std::collections::BTreeSet::new();
    for t in &trials {
        let k = t
            .arch
            .sampling_steps
            .expect("every candidate has a step count");
        assert!([10, 20, 50].contains(&k));
        steps_seen.insert(k);
        let step_ms = profile.predict(&t.arch, &setting).unwrap().total_ms;
        let want = parts.per_image_ms(step_ms, k);
        let got = t.latency_ms.unwrap();
        assert!((got - want).abs() <= 1e-9 * want, "{got} vs {want}");
        assert_eq!(
            t.status == TrialStatus::Infeasible,
            got > budget,
            "the per-image budget decides feasibility"
        );
    }
    assert!(steps_seen.len() >= 2, "{steps_seen:?}");
    // The same network at two step counts: two candidates, two ids.
    let a = &trials[0].arch;
    let mut b = a.clone();
    b.sampling_steps = Some(if a.sampling_steps == Some(10) { 20 } else { 10 });
    assert_ne!(a.hash_id(), b.hash_id());

    let refs = study.references().unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(
        refs[0].arch.sampling_steps,
        Some(50),
        "references at the largest count"
    );

    // Resuming with the same file re-resolves nothing that differs: the stored parts are kept.
    let mut again = cfg.clone();
    again.latency.image_parts = Some(unas_evaluator::latency::image::ImageParts {
        fixed_ms: parts.fixed_ms * 2.0,
        ..parts.clone()
    });
    let reopened = Study::create(dir.path(), again).unwrap();
    assert_eq!(reopened.config().latency.image_parts, Some(parts));
}

#[test]
fn time_to_image_settings_are_checked() {
    let base = || {
        let mut c = tiny_study("tti", ControllerConfig::Random, 4, 0);
        c.latency.objective = LatencyObjective::Image;
        c
    };
    let field = |c: unas_search::StudyConfig| c.check().unwrap_err().0;
    let mut c = base();
    c.quality.objective = unas_evaluator::quality::proxy::Objective::SupernetValLoss;
    assert_eq!(field(c), "latency.objective");
    let mut c = base();
    c.latency.sampling_steps = vec![10, 10];
    assert_eq!(field(c), "latency.sampling_steps");
    let mut c = base();
    c.latency.sampling_steps = vec![0, 10];
    assert_eq!(field(c), "latency.sampling_steps");
    let mut c = tiny_study("tti", ControllerConfig::Random, 4, 0);
    c.latency.sampling_steps = vec![10];
    assert_eq!(field(c), "latency.sampling_steps");
    // Default step choices, and a per-step study's stored settings are unchanged.
    let c = base();
    assert!(c.check().is_ok());
    assert_eq!(c.latency.step_choices(), vec![10, 15, 20, 30, 50]);
    assert_eq!(c.latency.reference_step_count(), Some(50));
    let plain = tiny_study("tti", ControllerConfig::Random, 4, 0);
    let json = serde_json::to_value(&plain.latency).unwrap();
    for key in [
        "objective",
        "sampling_steps",
        "image_parts",
        "reference_steps",
    ] {
        assert!(json.get(key).is_none(), "{key} in {json}");
    }
}
