//! The U-Net's normalisation, activation and attention ops, with fused fast paths on the CPU.
//!
//! Each function takes and returns burn tensors. On burn's Flex CPU backend (f32) it runs a
//! fused, multi-threaded kernel from [`cpu`]; on any other backend (CUDA, …) it composes burn
//! ops. Both paths compute the same function (the parity tests run the fast path; unit tests
//! below compare it with the composed one).

pub mod cpu;
pub mod math;

use std::any::{Any, TypeId};

use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::{gelu, silu};
use burn::tensor::backend::Backend;
use burn::tensor::module::{attention as burn_attention, interpolate};
use burn::tensor::ops::{AttentionModuleOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{DType, Tensor, TensorData, TensorPrimitive};
use burn_flex::FlexTensor;

/// Whether `B` stores floats as Flex tensors (the CPU fast paths apply).
fn is_flex<B: Backend>() -> bool {
    TypeId::of::<B::FloatTensorPrimitive>() == TypeId::of::<FlexTensor>()
}

/// The f32 values of a Flex-backed tensor, contiguous (shares the buffer when possible).
fn flex_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<FlexTensor> {
    if !is_flex::<B>() {
        return None;
    }
    let prim: Box<dyn Any> = Box::new(t.into_primitive().tensor());
    let flex = *prim.downcast::<FlexTensor>().ok()?;
    (flex.dtype() == DType::F32).then(|| flex.to_contiguous())
}

fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 tensor")
}

/// Wraps f32 values of shape `dims` as a tensor of the Flex-backed `B`.
fn from_vec<B: Backend, const D: usize>(values: Vec<f32>, dims: [usize; D]) -> Tensor<B, D> {
    let flex: Box<dyn Any> = Box::new(FlexTensor::from_data(TensorData::new(values, dims)));
    let prim = *flex
        .downcast::<B::FloatTensorPrimitive>()
        .unwrap_or_else(|_| unreachable!("only called when B is Flex-backed"));
    Tensor::from_primitive(TensorPrimitive::Float(prim))
}

fn fused_group_norm<B: Backend>(norm: &GroupNorm<B>, x: Tensor<B, 4>, act: bool) -> Tensor<B, 4> {
    let (Some(gamma), Some(beta)) = (norm.gamma.as_ref(), norm.beta.as_ref()) else {
        let y = norm.forward(x);
        return if act { silu(y) } else { y };
    };
    if !is_flex::<B>() {
        let y = norm.forward(x);
        return if act { silu(y) } else { y };
    }
    let dims = x.dims();
    let (Some(xf), Some(gf), Some(bf)) = (
        flex_f32(x.clone()),
        flex_f32(gamma.val()),
        flex_f32(beta.val()),
    ) else {
        let y = norm.forward(x);
        return if act { silu(y) } else { y };
    };
    let mut out = vec![0f32; dims.iter().product()];
    cpu::group_norm(
        slice(&xf),
        &mut out,
        dims[0],
        dims[1],
        norm.num_groups,
        slice(&gf),
        slice(&bf),
        norm.epsilon as f32,
        act,
    );
    from_vec(out, dims)
}

fn fast_conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>, upsample: bool) -> Tensor<B, 4> {
    let [batch, c_in, h, w] = x.dims();
    let [c_out, c_in_w, kh, kw] = conv.weight.dims();
    let (uh, uw) = if upsample { (2 * h, 2 * w) } else { (h, w) };
    // Explicit and valid padding; `Same` takes the generic path.
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some((top, left, bottom, right)),
        PaddingConfig2d::Valid => Some((0, 0, 0, 0)),
        PaddingConfig2d::Same => None,
    };
    let simple = is_flex::<B>()
        && conv.groups == 1
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && c_in_w == c_in;
    if let (true, Some((top, left, bottom, right))) = (simple, padding) {
        let stride = conv.stride[0];
        let bias = conv.bias.as_ref().map(|b| b.val());
        if let (Some(xf), Some(wf)) = (flex_f32(x.clone()), flex_f32(conv.weight.val())) {
            let bf = bias.and_then(flex_f32);
            let d = cpu::ConvDims {
                batch,
                c_in,
                h,
                w,
                c_out,
                kh,
                kw,
                stride,
                pad_top: top,
                pad_left: left,
                out_h: (uh + top + bottom - kh) / stride + 1,
                out_w: (uw + left + right - kw) / stride + 1,
                upsample,
            };
            let mut out = vec![0f32; batch * c_out * d.out_h * d.out_w];
            cpu::conv2d(slice(&xf), slice(&wf), bf.as_ref().map(slice), &mut out, d);
            return from_vec(out, [batch, c_out, d.out_h, d.out_w]);
        }
    }
    let x = if upsample {
        interpolate(
            x,
            [uh, uw],
            InterpolateOptions::new(InterpolateMode::Nearest),
        )
    } else {
        x
    };
    conv.forward(x)
}

/// `conv.forward(x)`: `[batch, c_in, h, w]` → `[batch, c_out, h', w']`.
pub fn conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    fast_conv2d(conv, x, false)
}

/// Nearest-neighbour 2x upsampling, then `conv`: `[batch, c_in, h, w]` →
/// `[batch, c_out, 2h', 2w']` (the upsampled map is never materialised on the CPU).
pub fn upsample_conv2d<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    fast_conv2d(conv, x, true)
}

/// `lin.forward(x)` on `[batch, n, d_in]` → `[batch, n, d_out]`, as one `[batch·n, d_in]`
/// matmul (a batched matmul against a broadcast weight reads the weight once per sample).
pub fn linear<B: Backend>(lin: &Linear<B>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, n, d] = x.dims();
    let y = lin.forward(x.reshape([b * n, d]));
    let d_out = y.dims()[1];
    y.reshape([b, n, d_out])
}

/// GroupNorm over `[batch, c, h, w]`.
pub fn group_norm<B: Backend>(norm: &GroupNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    fused_group_norm(norm, x, false)
}

/// SiLU(GroupNorm(x)) over `[batch, c, h, w]`.
pub fn group_norm_silu<B: Backend>(norm: &GroupNorm<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    fused_group_norm(norm, x, true)
}

/// GEGLU: `[batch, n, 2·inner]` (hidden half, then gate half) → `[batch, n, inner]`,
/// hidden · GELU(gate) with the exact (erf) GELU.
pub fn geglu<B: Backend>(h: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, n, two_inner] = h.dims();
    let inner = two_inner / 2;
    if let Some(hf) = flex_f32(h.clone()) {
        let mut out = vec![0f32; b * n * inner];
        cpu::geglu(slice(&hf), &mut out, inner);
        return from_vec(out, [b, n, inner]);
    }
    let hidden = h.clone().slice([0..b, 0..n, 0..inner]);
    let gate = h.slice([0..b, 0..n, inner..two_inner]);
    hidden * gelu(gate)
}

/// Multi-head scaled dot-product attention on unsplit heads.
///
/// - q: `[batch, n, c]`, k and v: `[batch, m, c]` (head `h` owns channels `h·c/heads ..`)
/// - output: `[batch, n, c]`
pub fn attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    heads: usize,
) -> Tensor<B, 3> {
    let [batch, n, c] = q.dims();
    let m = k.dims()[1];
    if is_flex::<B>() {
        if let (Some(qf), Some(kf), Some(vf)) = (
            flex_f32(q.clone()),
            flex_f32(k.clone()),
            flex_f32(v.clone()),
        ) {
            let mut out = vec![0f32; batch * n * c];
            let dims = cpu::AttentionDims {
                batch,
                n,
                m,
                channels: c,
                heads,
            };
            cpu::attention(slice(&qf), slice(&kf), slice(&vf), &mut out, dims);
            return from_vec(out, [batch, n, c]);
        }
    }
    let d = c / heads;
    let split = |t: Tensor<B, 3>, len: usize| t.reshape([batch, len, heads, d]).swap_dims(1, 2);
    let out = burn_attention(
        split(q, n),
        split(k, m),
        split(v, m),
        None,
        None,
        AttentionModuleOptions::default(),
    );
    out.swap_dims(1, 2).reshape([batch, n, c])
}

#[cfg(test)]
mod tests {
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
}
