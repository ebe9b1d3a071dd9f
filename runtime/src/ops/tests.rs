//! Tests of the parent module.

use super::*;
use burn::nn::GroupNormConfig;
use burn::tensor::Distribution;

type B = burn::backend::Flex;

fn max_diff<const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn fast_paths_match_burn_ops() {
    let device = Default::default();
    let n = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<B, 4>::random([2, 8, 5, 3], n, &device);
    let mut norm = GroupNormConfig::new(4, 8).init::<B>(&device);
    norm.gamma = Some(burn::module::Param::from_tensor(Tensor::random(
        [8],
        n,
        &device,
    )));
    norm.beta = Some(burn::module::Param::from_tensor(Tensor::random(
        [8],
        n,
        &device,
    )));
    assert!(max_diff(group_norm(&norm, x.clone()), norm.forward(x.clone())) < 1e-5);
    assert!(max_diff(group_norm_silu(&norm, x.clone()), silu(norm.forward(x))) < 1e-5);

    let x3 = Tensor::<B, 3>::random([2, 70, 6], n, &device);
    let mut ln = burn::nn::LayerNormConfig::new(6).init::<B>(&device);
    ln.gamma = burn::module::Param::from_tensor(Tensor::random([6], n, &device));
    ln.beta = Some(burn::module::Param::from_tensor(Tensor::random(
        [6],
        n,
        &device,
    )));
    assert!(max_diff(layer_norm(&ln, x3.clone(), 1e-5), ln.forward(x3.clone())) < 1e-5);
    for bias in [true, false] {
        let lin = burn::nn::LinearConfig::new(6, 9)
            .with_bias(bias)
            .init::<B>(&device);
        let want = lin.forward(x3.clone());
        assert!(max_diff(linear(&lin, x3.clone()), want) < 1e-5);
    }

    let h = Tensor::<B, 3>::random([2, 5, 12], n, &device);
    let want = h.clone().slice([0..2, 0..5, 0..6]) * gelu(h.clone().slice([0..2, 0..5, 6..12]));
    assert!(max_diff(geglu(h), want) < 1e-5);

    let q = Tensor::<B, 3>::random([2, 9, 8], n, &device);
    let k = Tensor::<B, 3>::random([2, 4, 8], n, &device);
    let v = Tensor::<B, 3>::random([2, 4, 8], n, &device);
    let split = |t: Tensor<B, 3>, len: usize| t.reshape([2, len, 2, 4]).swap_dims(1, 2);
    let want = burn_attention(
        split(q.clone(), 9),
        split(k.clone(), 4),
        split(v.clone(), 4),
        None,
        None,
        AttentionModuleOptions::default(),
    )
    .swap_dims(1, 2)
    .reshape([2, 9, 8]);
    assert!(max_diff(attention(q, k, v, 2), want) < 1e-5);

    use burn::nn::conv::Conv2dConfig;
    use burn::nn::PaddingConfig2d;
    let x = Tensor::<B, 4>::random([2, 3, 5, 4], n, &device);
    let conv = Conv2dConfig::new([3, 6], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(&device);
    assert!(max_diff(conv2d(&conv, x.clone()), conv.forward(x.clone())) < 1e-5);
    let up = interpolate(
        x.clone(),
        [10, 8],
        InterpolateOptions::new(InterpolateMode::Nearest),
    );
    assert!(max_diff(upsample_conv2d(&conv, x.clone()), conv.forward(up)) < 1e-5);
    let strided = Conv2dConfig::new([3, 6], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(&device);
    assert!(max_diff(conv2d(&strided, x.clone()), strided.forward(x.clone())) < 1e-5);
    let pointwise = Conv2dConfig::new([3, 6], [1, 1]).init::<B>(&device);
    assert!(max_diff(conv2d(&pointwise, x.clone()), pointwise.forward(x)) < 1e-5);
}

type A = burn::backend::Autodiff<burn::backend::Flex>;

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec().expect("f32")
}

fn assert_close<const D: usize>(got: Tensor<B, D>, want: Tensor<B, D>, what: &str) {
    let (got, want) = (values(got), values(want));
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max |diff| {diff} (scale {scale})"
    );
}

/// Deterministic pseudo-random values (burn's RNG is shared with concurrent tests).
fn data(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn tensor<const D: usize>(seed: u64, dims: [usize; D]) -> Tensor<A, D> {
    let len = dims.iter().product();
    Tensor::from_data(TensorData::new(data(seed, len), dims), &Default::default())
}

fn leaf<const D: usize>(seed: u64, dims: [usize; D]) -> Tensor<A, D> {
    tensor(seed, dims).require_grad()
}

fn param<const D: usize>(seed: u64, dims: [usize; D]) -> burn::module::Param<Tensor<A, D>> {
    burn::module::Param::from_tensor(tensor(seed, dims))
}

/// `Σ y ⊙ w` for a fixed pseudo-random `w` (so every output element's gradient differs).
fn weighted_sum<const D: usize>(y: Tensor<A, D>) -> Tensor<A, 1> {
    let w = tensor(99, y.dims());
    (y * w).sum()
}

#[test]
fn training_fast_paths_match_burn_autodiff() {
    assert!(
        autodiff::is_flex_autodiff::<A>(),
        "the fast paths apply to A"
    );
    let device = Default::default();
    for act in [false, true] {
        check_group_norm([2, 8, 5, 3], 4, act, 1);
    }

    let grads_ln = |fast: bool| {
        let x = leaf(4, [2, 70, 6]);
        let mut ln = burn::nn::LayerNormConfig::new(6).init::<A>(&device);
        ln.gamma = param(5, [6]);
        ln.beta = Some(param(6, [6]));
        let y = if fast {
            layer_norm(&ln, x.clone(), 1e-5)
        } else {
            ln.forward(x.clone())
        };
        let g = weighted_sum(y.clone()).backward();
        let beta = ln.beta.as_ref().expect("bias").val();
        (
            y.inner(),
            x.grad(&g).expect("dx"),
            ln.gamma.val().grad(&g).expect("dgamma"),
            beta.grad(&g).expect("dbeta"),
        )
    };
    let (a, b) = (grads_ln(true), grads_ln(false));
    assert_close(a.0, b.0, "layer norm: output");
    assert_close(a.1, b.1, "layer norm: dx");
    assert_close(a.2, b.2, "layer norm: dgamma");
    assert_close(a.3, b.3, "layer norm: dbeta");

    let grads_geglu = |fast: bool| {
        let h = leaf(7, [2, 5, 12]);
        let y = if fast {
            geglu(h.clone())
        } else {
            h.clone().slice([0..2, 0..5, 0..6]) * gelu(h.clone().slice([0..2, 0..5, 6..12]))
        };
        let g = weighted_sum(y.clone()).backward();
        (y.inner(), h.grad(&g).expect("dh"))
    };
    let (a, b) = (grads_geglu(true), grads_geglu(false));
    assert_close(a.0, b.0, "geglu: output");
    assert_close(a.1, b.1, "geglu: dh");

    check_attention(9, 4, 8, 2, 8);

    let grads_t = |fast: bool| {
        let x = leaf(17, [2, 7, 5]);
        let y = if fast {
            transpose(x.clone())
        } else {
            x.clone().swap_dims(1, 2)
        };
        let g = weighted_sum(y.clone()).backward();
        (y.inner(), x.grad(&g).expect("dx"))
    };
    let (a, b) = (grads_t(true), grads_t(false));
    assert_close(a.0, b.0, "transpose: output");
    assert_close(a.1, b.1, "transpose: dx");

    for with_bias in [true, false] {
        let grads_linear = |fast: bool| {
            let x = leaf(14, [2, 300, 5]);
            let mut lin = burn::nn::LinearConfig::new(5, 7)
                .with_bias(with_bias)
                .init::<A>(&device);
            lin.weight = param(15, [5, 7]);
            if with_bias {
                lin.bias = Some(param(16, [7]));
            }
            let y = if fast {
                linear(&lin, x.clone())
            } else {
                lin.forward(x.clone())
            };
            let g = weighted_sum(y.clone()).backward();
            let db = lin.bias.as_ref().map(|b| b.val().grad(&g).expect("dbias"));
            (
                y.inner(),
                x.grad(&g).expect("dx"),
                lin.weight.val().grad(&g).expect("dweight"),
                db,
            )
        };
        let (a, b) = (grads_linear(true), grads_linear(false));
        assert_close(a.0, b.0, "linear: output");
        assert_close(a.1, b.1, "linear: dx");
        assert_close(a.2, b.2, "linear: dweight");
        if let (Some(x), Some(y)) = (a.3, b.3) {
            assert_close(x, y, "linear: dbias");
        }
    }

    for (stride, kernel, up) in [(1, 3, false), (2, 3, false), (1, 1, false), (1, 3, true)] {
        check_conv([2, 3, 5, 4], 6, stride, kernel, up, 11);
    }

    use burn::nn::conv::Conv2dConfig;
    // conv2d_plus_channel (a ResNet's conv1 + time embedding) against conv + broadcast
    // add, and conv2d_plus (its conv2 + skip) against conv + add.
    enum Term {
        Channel(Tensor<A, 2>),
        Residual(Tensor<A, 4>),
    }
    for (channel, kernel) in [(true, 3), (true, 1), (false, 3), (false, 1)] {
        let grads_plus = |fast: bool| {
            let x = leaf(18, [3, 3, 5, 4]);
            let pad = kernel / 2;
            let mut conv = Conv2dConfig::new([3, 6], [kernel, kernel])
                .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
                .init::<A>(&device);
            conv.weight = param(20, [6, 3, kernel, kernel]);
            conv.bias = Some(param(21, [6]));
            let (y, term) = if channel {
                let t = leaf(19, [3, 6]);
                let y = if fast {
                    conv2d_plus_channel(&conv, x.clone(), t.clone())
                } else {
                    conv.forward(x.clone()) + t.clone().reshape([3, 6, 1, 1])
                };
                (y, Term::Channel(t))
            } else {
                let r = leaf(23, [3, 6, 5, 4]);
                let y = if fast {
                    conv2d_plus(&conv, x.clone(), r.clone())
                } else {
                    r.clone() + conv.forward(x.clone())
                };
                (y, Term::Residual(r))
            };
            let g = weighted_sum(y.clone()).backward();
            let bias = conv.bias.as_ref().expect("bias").val();
            (
                y.inner(),
                x.grad(&g).expect("dx"),
                conv.weight.val().grad(&g).expect("dweight"),
                bias.grad(&g).expect("dbias"),
                match term {
                    Term::Channel(t) => t.grad(&g).expect("doffset").reshape([18]),
                    Term::Residual(r) => r.grad(&g).expect("dresidual").reshape([360]),
                },
            )
        };
        let (a, b) = (grads_plus(true), grads_plus(false));
        let name = if channel {
            "conv2d_plus_channel"
        } else {
            "conv2d_plus"
        };
        let what = format!("{name} (kernel {kernel})");
        assert_close(a.0, b.0, &format!("{what}: output"));
        assert_close(a.1, b.1, &format!("{what}: dx"));
        assert_close(a.2, b.2, &format!("{what}: dweight"));
        assert_close(a.3, b.3, &format!("{what}: dbias"));
        assert_close(a.4, b.4, &format!("{what}: dterm"));
    }
}

/// The fast training paths at the sizes a U-Net of the tiny spaces trains at (16x16
/// latents, 32–64 channels, 256 query tokens, 16 text tokens): past every tile, row block
/// and thread split of the kernels, which the small cases above stay inside.
#[test]
fn training_fast_paths_match_burn_autodiff_at_unet_sizes() {
    // (c_in, c_out, side, stride, kernel, upsample)
    for (c_in, c_out, side, stride, kernel, up) in [
        (32, 64, 16, 1, 3, false),
        (64, 64, 16, 2, 3, false),
        (64, 32, 8, 1, 3, true),
        (64, 32, 16, 1, 1, false),
    ] {
        check_conv([2, c_in, side, side], c_out, stride, kernel, up, 31);
    }
    check_group_norm([2, 64, 16, 16], 8, true, 34);
    // Cross-attention (256 queries, 16 keys) and self-attention (256 x 256), 2 heads of 32.
    for m in [16, 256] {
        check_attention(256, m, 64, 2, 37);
    }
}

/// `y` and the gradients of [`weighted_sum`]`(y)` with respect to `a`, `b` and `c`.
fn output_and_grads<const DY: usize, const DA: usize, const DB: usize, const DC: usize>(
    y: Tensor<A, DY>,
    a: &Tensor<A, DA>,
    b: &Tensor<A, DB>,
    c: &Tensor<A, DC>,
) -> (Tensor<B, DY>, Tensor<B, DA>, Tensor<B, DB>, Tensor<B, DC>) {
    let g = weighted_sum(y.clone()).backward();
    (
        y.inner(),
        a.grad(&g).expect("gradient of the first input"),
        b.grad(&g).expect("gradient of the second input"),
        c.grad(&g).expect("gradient of the third input"),
    )
}

/// [`assert_close`] on an output and three gradients, named `grads`.
fn assert_all_close<const D0: usize, const D1: usize, const D2: usize, const D3: usize>(
    got: (Tensor<B, D0>, Tensor<B, D1>, Tensor<B, D2>, Tensor<B, D3>),
    want: (Tensor<B, D0>, Tensor<B, D1>, Tensor<B, D2>, Tensor<B, D3>),
    what: &str,
    grads: [&str; 3],
) {
    assert_close(got.0, want.0, &format!("{what}: output"));
    assert_close(got.1, want.1, &format!("{what}: {}", grads[0]));
    assert_close(got.2, want.2, &format!("{what}: {}", grads[1]));
    assert_close(got.3, want.3, &format!("{what}: {}", grads[2]));
}

/// Group norm (then SiLU with `act`) of `x` = `dims` in `groups`: the fast path's output
/// and gradients against burn's ops.
fn check_group_norm(dims: [usize; 4], groups: usize, act: bool, seed: u64) {
    let device = Default::default();
    let c = dims[1];
    let grads = |fast: bool| {
        let x = leaf(seed, dims);
        let mut norm = GroupNormConfig::new(groups, c).init::<A>(&device);
        norm.gamma = Some(param(seed + 1, [c]));
        norm.beta = Some(param(seed + 2, [c]));
        let y = match (fast, act) {
            (true, false) => group_norm(&norm, x.clone()),
            (true, true) => group_norm_silu(&norm, x.clone()),
            (false, false) => norm.forward(x.clone()),
            (false, true) => silu(norm.forward(x.clone())),
        };
        let gamma = norm.gamma.as_ref().expect("affine").val();
        let beta = norm.beta.as_ref().expect("affine").val();
        output_and_grads(y, &x, &gamma, &beta)
    };
    let what = format!("group norm {dims:?} in {groups} groups (silu {act})");
    assert_all_close(grads(true), grads(false), &what, ["dx", "dgamma", "dbeta"]);
}

/// Attention of `n` queries over `m` keys and values of width `c` in `heads` heads
/// (batch 2): the fast path's output and gradients against burn's attention.
fn check_attention(n: usize, m: usize, c: usize, heads: usize, seed: u64) {
    let grads = |fast: bool| {
        let (q, k, v) = (
            leaf(seed, [2, n, c]),
            leaf(seed + 1, [2, m, c]),
            leaf(seed + 2, [2, m, c]),
        );
        let split =
            |t: Tensor<A, 3>, len: usize| t.reshape([2, len, heads, c / heads]).swap_dims(1, 2);
        let y = if fast {
            attention(q.clone(), k.clone(), v.clone(), heads)
        } else {
            burn_attention(
                split(q.clone(), n),
                split(k.clone(), m),
                split(v.clone(), m),
                None,
                None,
                AttentionModuleOptions::default(),
            )
            .swap_dims(1, 2)
            .reshape([2, n, c])
        };
        output_and_grads(y, &q, &k, &v)
    };
    let what = format!("attention {n} x {m}, width {c}, {heads} heads");
    assert_all_close(grads(true), grads(false), &what, ["dq", "dk", "dv"]);
}

/// A convolution of `x` = `dims` to `c_out` channels (padding kernel / 2, input upsampled
/// 2x first with `up`): the fast path's output and gradients against burn's ops.
fn check_conv(dims: [usize; 4], c_out: usize, stride: usize, kernel: usize, up: bool, seed: u64) {
    use burn::nn::conv::Conv2dConfig;
    let device = Default::default();
    let [_, c_in, h, w] = dims;
    let grads = |fast: bool| {
        let x = leaf(seed, dims);
        let pad = kernel / 2;
        let mut conv = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
            .init::<A>(&device);
        conv.weight = param(seed + 1, [c_out, c_in, kernel, kernel]);
        conv.bias = Some(param(seed + 2, [c_out]));
        let y = match (fast, up) {
            (true, false) => conv2d(&conv, x.clone()),
            (true, true) => upsample_conv2d(&conv, x.clone()),
            (false, false) => conv.forward(x.clone()),
            (false, true) => conv.forward(interpolate(
                x.clone(),
                [2 * h, 2 * w],
                InterpolateOptions::new(InterpolateMode::Nearest),
            )),
        };
        let bias = conv.bias.as_ref().expect("bias").val();
        output_and_grads(y, &x, &conv.weight.val(), &bias)
    };
    let what =
        format!("conv2d {dims:?} -> {c_out} (stride {stride}, kernel {kernel}, upsample {up})");
    assert_all_close(grads(true), grads(false), &what, ["dx", "dweight", "dbias"]);
}
