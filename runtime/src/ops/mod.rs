//! The U-Net's normalisation, activation and attention ops, with fused fast paths on the CPU.
//!
//! Each function takes and returns burn tensors. On burn's Flex CPU backend (f32) it runs a
//! fused, multi-threaded kernel from [`cpu`]; on any other backend (CUDA, …) it composes burn
//! ops. Both paths compute the same function (the parity tests run the fast path; unit tests
//! below compare it with the composed one).

mod autodiff;
pub mod cpu;
pub mod cpu_grad;
pub mod math;

use std::any::{Any, TypeId};

use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, LayerNorm, Linear, PaddingConfig2d};
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
    if autodiff::applies::<B>(&[x.dtype(), gamma.dtype(), beta.dtype()]) {
        return autodiff::group_norm(
            x,
            gamma.val(),
            beta.val(),
            norm.num_groups,
            norm.epsilon as f32,
            act,
        );
    }
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
    fast_conv2d_with(conv, x, upsample, Extra::None)
}

/// A term added to a convolution's output, folded into the convolution on the CPU.
enum Extra<B: Backend> {
    None,
    /// `[batch, c_out]`, broadcast over each sample's channel.
    Offset(Tensor<B, 2>),
    /// `[batch, c_out, out_h, out_w]`.
    Residual(Tensor<B, 4>),
}

/// [`fast_conv2d`] plus `extra`.
fn fast_conv2d_with<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    upsample: bool,
    extra: Extra<B>,
) -> Tensor<B, 4> {
    let [batch, c_in, h, w] = x.dims();
    let [c_out, c_in_w, kh, kw] = conv.weight.dims();
    let (uh, uw) = if upsample { (2 * h, 2 * w) } else { (h, w) };
    // Explicit and valid padding; `Same` takes the generic path.
    let padding = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => Some((top, left, bottom, right)),
        PaddingConfig2d::Valid => Some((0, 0, 0, 0)),
        PaddingConfig2d::Same => None,
    };
    let simple = conv.groups == 1
        && conv.dilation == [1, 1]
        && conv.stride[0] == conv.stride[1]
        && c_in_w == c_in;
    if let (true, Some((top, left, bottom, right))) = (simple, padding) {
        let stride = conv.stride[0];
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
        let extra_dtype = match &extra {
            Extra::None => DType::F32,
            Extra::Offset(o) => o.dtype(),
            Extra::Residual(r) => r.dtype(),
        };
        let residual_fits = match &extra {
            Extra::Residual(r) => r.dims() == [batch, c_out, d.out_h, d.out_w],
            _ => true,
        };
        if let (Some(bias), true) = (conv.bias.as_ref(), residual_fits) {
            if autodiff::applies::<B>(&[x.dtype(), conv.weight.dtype(), bias.dtype(), extra_dtype])
            {
                let (w, b) = (conv.weight.val(), bias.val());
                use autodiff::Added;
                return match extra {
                    Extra::None => autodiff::conv2d(x, w, b, d),
                    Extra::Offset(o) => autodiff::conv2d_plus(x, w, b, o, Added::Offset, d),
                    Extra::Residual(r) => autodiff::conv2d_plus(x, w, b, r, Added::Residual, d),
                };
            }
        }
        if is_flex::<B>() && residual_fits {
            let extra_f = match &extra {
                Extra::None => Some(None),
                Extra::Offset(o) => flex_f32(o.clone()).map(Some),
                Extra::Residual(r) => flex_f32(r.clone()).map(Some),
            };
            if let (Some(xf), Some(wf), Some(ef)) =
                (flex_f32(x.clone()), flex_f32(conv.weight.val()), extra_f)
            {
                let bf = conv.bias.as_ref().and_then(|b| flex_f32(b.val()));
                let mut init = cpu::ConvInit {
                    bias: bf.as_ref().map(slice),
                    ..cpu::ConvInit::default()
                };
                match &extra {
                    Extra::Offset(_) => init.offset = ef.as_ref().map(slice),
                    Extra::Residual(_) => init.residual = ef.as_ref().map(slice),
                    Extra::None => {}
                }
                let mut out = vec![0f32; batch * c_out * d.out_h * d.out_w];
                cpu::conv2d_fused(slice(&xf), slice(&wf), init, &mut out, d);
                return from_vec(out, [batch, c_out, d.out_h, d.out_w]);
            }
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
    let y = conv.forward(x);
    match extra {
        Extra::None => y,
        Extra::Offset(o) => y + o.reshape([batch, c_out, 1, 1]),
        Extra::Residual(r) => y + r,
    }
}

/// `conv.forward(x) + offset[:, :, None, None]`: `x` `[batch, c_in, h, w]`, `offset`
/// `[batch, c_out]` → `[batch, c_out, h', w']` (on the CPU the offset is added as the output
/// is written, and its gradient is the per-sample bias gradient: no broadcast add).
pub fn conv2d_plus_channel<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    offset: Tensor<B, 2>,
) -> Tensor<B, 4> {
    fast_conv2d_with(conv, x, false, Extra::Offset(offset))
}

/// `conv.forward(x) + residual`: `x` `[batch, c_in, h, w]`, `residual` `[batch, c_out, h',
/// w']` → `[batch, c_out, h', w']` (on the CPU the residual is the output's starting value and
/// its gradient the output's: no separate add).
pub fn conv2d_plus<B: Backend>(
    conv: &Conv2d<B>,
    x: Tensor<B, 4>,
    residual: Tensor<B, 4>,
) -> Tensor<B, 4> {
    fast_conv2d_with(conv, x, false, Extra::Residual(residual))
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
    let x = x.reshape([b * n, d]);
    let bias_dtype = lin.bias.as_ref().map_or(DType::F32, |b| b.dtype());
    let y = if autodiff::applies::<B>(&[x.dtype(), lin.weight.dtype(), bias_dtype]) {
        let d_out = lin.weight.dims()[1];
        let bias = match lin.bias.as_ref() {
            Some(b) => b.val(),
            None => Tensor::zeros([d_out], &x.device()),
        };
        autodiff::linear(x, lin.weight.val(), bias)
    } else if let (Some(xf), Some(wf)) = (flex_f32(x.clone()), flex_f32(lin.weight.val())) {
        let [d_in, d_out] = lin.weight.dims();
        let bias = match lin.bias.as_ref().map(|b| flex_f32(b.val())) {
            Some(Some(bf)) => slice(&bf).to_vec(),
            Some(None) => return lin.forward(x).reshape([b, n, d_out]),
            None => vec![0f32; d_out],
        };
        let mut out = vec![0f32; b * n * d_out];
        cpu_grad::linear(slice(&xf), slice(&wf), &bias, &mut out, d_in);
        from_vec(out, [b * n, d_out])
    } else {
        lin.forward(x)
    };
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

/// Swaps the last two axes, `[batch, r, c]` → `[batch, c, r]`, materialised (contiguous) on
/// the CPU, where a strided view would be copied element by element by the next op.
pub fn transpose<B: Backend>(x: Tensor<B, 3>) -> Tensor<B, 3> {
    if autodiff::applies::<B>(&[x.dtype()]) {
        return autodiff::transpose(x);
    }
    let [b, r, c] = x.dims();
    if let Some(xf) = flex_f32(x.clone()) {
        let mut out = vec![0f32; b * r * c];
        cpu::transpose(slice(&xf), &mut out, b, r, c);
        return from_vec(out, [b, c, r]);
    }
    x.swap_dims(1, 2)
}

/// LayerNorm over the last axis of `[batch, n, d]` with epsilon `eps` (burn's `LayerNorm`
/// keeps its epsilon private, so the caller passes the one it was built with).
pub fn layer_norm<B: Backend>(norm: &LayerNorm<B>, x: Tensor<B, 3>, eps: f64) -> Tensor<B, 3> {
    if let Some(beta) = norm.beta.as_ref() {
        if autodiff::applies::<B>(&[x.dtype(), norm.gamma.dtype(), beta.dtype()]) {
            return autodiff::layer_norm(x, norm.gamma.val(), beta.val(), eps as f32);
        }
        let dims = x.dims();
        if let (Some(xf), Some(gf), Some(bf)) = (
            flex_f32(x.clone()),
            flex_f32(norm.gamma.val()),
            flex_f32(beta.val()),
        ) {
            let mut out = vec![0f32; dims.iter().product()];
            cpu_grad::layer_norm(
                slice(&xf),
                &mut out,
                dims[2],
                slice(&gf),
                slice(&bf),
                eps as f32,
            );
            return from_vec(out, dims);
        }
    }
    norm.forward(x)
}

/// GEGLU: `[batch, n, 2·inner]` (hidden half, then gate half) → `[batch, n, inner]`,
/// hidden · GELU(gate) with the exact (erf) GELU.
pub fn geglu<B: Backend>(h: Tensor<B, 3>) -> Tensor<B, 3> {
    let [b, n, two_inner] = h.dims();
    let inner = two_inner / 2;
    if autodiff::applies::<B>(&[h.dtype()]) {
        return autodiff::geglu(h);
    }
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
    if autodiff::applies::<B>(&[q.dtype(), k.dtype(), v.dtype()]) {
        return autodiff::attention(q, k, v, heads);
    }
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
mod tests;
