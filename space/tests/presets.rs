//! The shipped presets: exact parameter counts and membership in the shipped spaces.

use unas_space::{load_arch, preset, CostQuery, SearchSpace};

#[test]
fn sd15_has_the_published_parameter_count() {
    let arch = preset("sd15");
    assert_eq!(arch.params().unwrap(), 859_520_964);
}

#[test]
fn decidiffusion_structure_matches_the_reference_layout() {
    // The forward of the public DeciDiffusion 1.0 `FlexibleUNet2DConditionModel` (its
    // `flexible_unet/config.json` and modelling code): at a 64x64 latent,
    // down 64: R R | 32: R A R | 16: R A A A -> 8; mid: R, A, R, A, R, R, R -> 16;
    // up 16: R A R A A A A A | 32: R A R A R A | 64: R R R; 8 skips.
    let plan = preset("decidiffusion").plan().unwrap();
    let pushes = plan.steps.iter().filter(|s| s.push_skip).count();
    let pops = plan.steps.iter().filter(|s| s.pop_skip.is_some()).count();
    assert_eq!((pushes, pops), (8, 8));
    let seq = |prefix: &str| -> String {
        plan.steps
            .iter()
            .map(|s| &plan.modules[s.module])
            .filter(|m| m.key.starts_with(prefix))
            .map(|m| match m.kind.type_name() {
                "resnet" => 'R',
                "attention" => 'A',
                "downsample" => 'D',
                "upsample" => 'U',
                _ => '?',
            })
            .collect()
    };
    assert_eq!(seq("down_blocks.0."), "RRD");
    assert_eq!(seq("down_blocks.1."), "RARD");
    assert_eq!(seq("down_blocks.2."), "RAAAD");
    assert_eq!(seq("mid_block."), "RRARARRRU");
    assert_eq!(seq("up_blocks.0."), "RARAAAAAU");
    assert_eq!(seq("up_blocks.1."), "RARARAU");
    assert_eq!(seq("up_blocks.2."), "RRR");
    // The mid block's module list has 7 entries; R0 runs twice.
    let mid_modules = plan
        .modules
        .iter()
        .filter(|m| m.key.starts_with("mid_block.modules_list."))
        .count();
    assert_eq!(mid_modules, 7);
}

#[test]
fn decidiffusion_is_smaller_and_cheaper_than_sd15() {
    let q = CostQuery::default();
    let sd = preset("sd15").plan().unwrap().cost(&q).unwrap();
    let nas = preset("decidiffusion").plan().unwrap().cost(&q).unwrap();
    assert!(nas.params < sd.params, "{} vs {}", nas.params, sd.params);
    assert!(nas.macs < sd.macs, "{} vs {}", nas.macs, sd.macs);
}

#[test]
fn shipped_spaces_contain_their_presets() {
    let default = SearchSpace::load("default").unwrap();
    for name in ["sd15", "decidiffusion"] {
        assert!(
            default.encode(&load_arch(name).unwrap()).is_some(),
            "{name} not in the default space"
        );
    }
    let tiny = SearchSpace::load("tiny").unwrap();
    for name in ["tiny", "tiny-nas"] {
        assert!(
            tiny.encode(&load_arch(name).unwrap()).is_some(),
            "{name} not in the tiny space"
        );
    }
}
