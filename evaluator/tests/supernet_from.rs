//! `unas supernet train --from`: a pretrained diffusers U-Net initialises the supernet by
//! role. Its own test binary: the resume test of `supernet.rs` compares bits, and burn-flex's
//! rayon reductions can change their summation order when another computation shares the
//! process's thread pool.

use std::path::PathBuf;

use unas_runtime::device::Cpu;
use unas_runtime::RoleWeights;
use unas_space::load::Source;
use unas_space::SearchSpace;

/// `--from`: a pretrained diffusers U-Net (the `tiny-sd` fixture) initialises the supernet of
/// a space with its stem and widths by role — every tensor of the covering architecture that
/// the pretrained U-Net has with the same role and shape, the zero-initialised residual
/// outputs included.
#[test]
fn a_pretrained_unet_initialises_the_supernet_by_role() {
    use unas_evaluator::quality::supernet::init_supernet;
    use unas_runtime::pipeline::read_unet_arch;
    use unas_runtime::UNet2DConditionModel;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures/pipeline/tiny-sd/unet");
    let arch = read_unet_arch(&dir.join("config.json")).unwrap();
    let device = Default::default();
    let pretrained = UNet2DConditionModel::<Cpu>::load(
        &arch,
        &dir.join("diffusion_pytorch_model.safetensors"),
        &device,
    )
    .unwrap();
    let weights = RoleWeights::from_unet(&arch, &pretrained).unwrap();
    // A space around the fixture: its stem and widths, 3 or 4 stages, 1-2 ResNets per block.
    let widths: Vec<usize> = arch.down.iter().map(|d| d.out_channels).collect();
    let stages: String = widths
        .iter()
        .map(|w| {
            format!(
                "[[stage]]\nout_channels = [{w}]\ndown_resnets = [1, 2]\ndown_attentions = [0, 1, 2]\nup_attentions = [0, 1, 2, 3]\n"
            )
        })
        .collect();
    let text = format!(
        "name = \"around-tiny-sd\"\n[stem]\n{}\n[knobs]\nstages = [3, 4]\nlayouts = [\"diffusers\"]\nmid_resnets = [1]\nmid_attentions = [0]\n{stages}",
        toml::to_string(&arch.stem).unwrap()
    );
    let space = SearchSpace::from_source(&Source {
        file: PathBuf::from("around-tiny-sd.toml"),
        text,
    })
    .unwrap();
    let t = space
        .topologies()
        .into_iter()
        .find(|t| t.widths == widths)
        .unwrap();
    let (sup, unet, stats) = init_supernet::<Cpu>(&space, &t, 0, Some(&weights), &device).unwrap();
    let stats = stats.unwrap();
    let after = RoleWeights::from_unet(&sup, &unet).unwrap();
    assert_eq!(stats.copied + stats.fresh, after.len());
    assert!(stats.copied > after.len() / 2, "{stats:?}");
    // Every copied tensor equals the pretrained one of the same role.
    let roles = sup.plan().unwrap().roles(sup.stages());
    let mut checked = 0;
    for path in after.paths() {
        let parts: Vec<&str> = path.splitn(3, '.').collect();
        let i: usize = parts[1].parse().unwrap();
        if let Some(j) = weights.block_of(&roles[i]) {
            let src = format!("blocks.{j}.{}", parts[2]);
            if let Some(w) = weights
                .get(&src)
                .filter(|w| Some(w.0) == after.get(path).map(|a| a.0))
            {
                assert_eq!(after.get(path), Some(w), "{path} from {src}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, stats.copied);
}
