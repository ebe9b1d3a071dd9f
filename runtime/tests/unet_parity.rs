//! Parity of the burn U-Net with the PyTorch reference (diffusers' UNet2DConditionModel and a
//! FlexibleUNet re-implementation) on the fixtures of tools/fixtures/make_unet_fixtures.py.
//!
//! Tolerance: max |burn − torch| ≤ 1e-4 × max |torch output|, in f32.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use unas_runtime::{UNet2DConditionModel, Weights};

type B = Flex;

/// Relative tolerance on the maximum absolute error (see the module docs).
const REL_TOL: f32 = 1e-4;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures/unet")
        .join(name)
}

fn tensor<const D: usize>(io: &mut Weights, key: &str, dims: [usize; D]) -> Tensor<B, D> {
    let values = io.take_f32(key, &dims).unwrap();
    Tensor::from_data(TensorData::new(values, dims), &Default::default())
}

/// Runs fixture `name` and returns (max abs error, max |reference|).
fn run_fixture(name: &str) -> (f32, f32) {
    let dir = fixture_dir(name);
    let arch = unas_space::load_arch(dir.join("arch.toml").to_str().unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let device = Default::default();
    let model = UNet2DConditionModel::<B>::load(&arch, &dir.join("weights.safetensors"), &device)
        .unwrap_or_else(|e| panic!("{name}: {e}"));

    let mut io = Weights::open(&dir.join("io.safetensors")).unwrap();
    let shapes = io.shapes();
    let dims4 = |k: &str| -> [usize; 4] { shapes[k].clone().try_into().unwrap() };
    let dims3 = |k: &str| -> [usize; 3] { shapes[k].clone().try_into().unwrap() };
    let sample = tensor(&mut io, "sample", dims4("sample"));
    let timesteps = tensor(&mut io, "timesteps", [shapes["timesteps"][0]]);
    let context = tensor(
        &mut io,
        "encoder_hidden_states",
        dims3("encoder_hidden_states"),
    );
    let expected = tensor(&mut io, "out", dims4("out"));
    io.finish().unwrap();

    model
        .check_inputs(sample.dims(), timesteps.dims(), context.dims())
        .unwrap();
    let out = model.forward(sample, timesteps, context);
    assert_eq!(out.dims(), expected.dims(), "{name}: output shape");
    let err: f32 = (out - expected.clone()).abs().max().into_scalar();
    let scale: f32 = expected.abs().max().into_scalar();
    (err, scale)
}

fn assert_parity(name: &str) {
    let (err, scale) = run_fixture(name);
    println!("{name}: max abs error {err:.3e}, max |out| {scale:.4}");
    assert!(scale > 0.1, "{name}: degenerate reference output");
    assert!(
        err <= REL_TOL * scale,
        "{name}: max abs error {err:.3e} > {REL_TOL} x max |out| ({scale:.4})"
    );
}

/// SD1.5-shaped (`tiny` preset at a quarter width), diffusers' UNet2DConditionModel.
#[test]
fn parity_tiny_diffusers() {
    assert_parity("tiny");
}

/// Per-block layer counts, mixed blocks, head_dim, linear projections, depth-2 transformers,
/// freq_shift 1 without flip, non-square latent.
#[test]
fn parity_mixed_diffusers() {
    assert_parity("mixed");
}

/// DeciDiffusion's flexible layout (`tiny-nas` at a quarter width), F16 weights.
#[test]
fn parity_tiny_nas_flexible_f16() {
    assert_parity("tiny-nas");
}

/// Flexible layout with the resnets-first block order and a dropped downsample skip.
#[test]
fn parity_flexible_resnets_first() {
    assert_parity("flex-resnets-first");
}
