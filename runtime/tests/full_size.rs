//! Full-size U-Nets (random weights) at 512 px: one forward each. Slow on a CPU (minutes) and
//! needs ~10 GB of memory, so ignored by default:
//!
//! ```text
//! cargo test --release -p unas-runtime --test full_size -- --ignored --nocapture
//! ```

use std::time::Instant;

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{Distribution, Tensor};
use unas_runtime::UNet2DConditionModel;

fn forward_64x64_batch2(preset: &str) {
    let arch = unas_space::preset(preset);
    let device = Default::default();
    let t = Instant::now();
    let model = UNet2DConditionModel::<Flex>::init_materialized(&arch, &device).unwrap();
    let build = t.elapsed();
    assert_eq!(model.num_params() as u64, arch.params().unwrap());
    let n = Distribution::Normal(0.0, 1.0);
    let sample = Tensor::<Flex, 4>::random([2, 4, 64, 64], n, &device);
    let timesteps = Tensor::<Flex, 1>::from_floats([999.0f32, 1.0].as_slice(), &device);
    let context = Tensor::<Flex, 3>::random([2, 77, arch.stem.cross_attention_dim], n, &device);
    let t = Instant::now();
    let out = model.forward(sample, timesteps, context);
    let fwd = t.elapsed();
    assert_eq!(out.dims(), [2, 4, 64, 64]);
    let finite: bool = out.clone().is_finite().all().into_scalar();
    assert!(finite, "{preset}: non-finite output");
    let std: f32 = out.var(0).mean().sqrt().into_scalar();
    assert!(std > 1e-3, "{preset}: degenerate output");
    println!(
        "{preset}: {} params, build {:.1} s, forward 64x64 batch 2: {:.1} s",
        model.num_params(),
        build.as_secs_f64(),
        fwd.as_secs_f64()
    );
}

#[test]
#[ignore = "full-size model: minutes on a CPU, ~10 GB"]
fn sd15_forward_512px() {
    forward_64x64_batch2("sd15");
}

#[test]
#[ignore = "full-size model: minutes on a CPU, ~10 GB"]
fn decidiffusion_forward_512px() {
    forward_64x64_batch2("decidiffusion");
}
