//! Backward CPU kernels (and the forwards they pair with) on contiguous f32 slices, for the
//! custom autodiff ops of [`super::autodiff`].
//!
//! Every reduction over the batch (a weight's or a norm's gradient) is summed in a fixed order
//! from per-sample (or per-row-block) partials, so gradients are bit-identical whatever the
//! thread count.

use rayon::prelude::*;

use super::cpu::{
    im2col_sample, multiversion, softmax_rows, AttentionDims, ConvDims, Scratch, SharedMut,
};
use super::math;

/// σ(x).
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + math::exp(-x))
}

/// d GELU(x) / dx = Φ(x) + x φ(x), exact (erf) GELU.
#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    0.5 * (1.0 + math::erf(x * std::f32::consts::FRAC_1_SQRT_2))
        + x * INV_SQRT_2PI * math::exp(-0.5 * x * x)
}

/// Sums `parts` (`[n, len]`) over its first axis, in order.
pub(crate) fn sum_rows(parts: &[f32], len: usize) -> Vec<f32> {
    let mut out = vec![0f32; len];
    for row in parts.chunks_exact(len.max(1)) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
    out
}

/// Independent partial sums of the vectorised reductions: LLVM keeps them in vector registers
/// (a sequential float sum cannot be vectorised: it would change the rounding), and they are
/// added up at the end in a fixed order, so results do not depend on the thread count.
const LANES: usize = 16;

/// Σ f(v) over `x` with [`LANES`] f64 partials, added in a fixed order.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0f64; LANES];
    let chunks = x.chunks_exact(LANES);
    let mut total: f64 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        let c: &[f32; LANES] = c.try_into().expect("chunks_exact");
        for l in 0..LANES {
            acc[l] += f(c[l]);
        }
    }
    for a in acc {
        total += a;
    }
    total
}

/// Mean and 1/√(var + eps) of `x` (two passes, f64 accumulation).
#[inline(always)]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f64;
    let mean = lane_sum(x, |v| v as f64) / n;
    let var = lane_sum(x, |v| (v as f64 - mean).powi(2)) / n;
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

multiversion! {
    /// One group's share of [`group_norm_backward`]: `xs`, `dzs`, `dxs` hold `gamma.len()`
    /// channels of equal length; `dgs`, `dbs` get this group's dgamma and dbeta partials.
    #[allow(clippy::too_many_arguments)]
    fn group_backward(
        xs: &[f32],
        dzs: &[f32],
        dxs: &mut [f32],
        dgs: &mut [f32],
        dbs: &mut [f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        silu: bool,
    ) {
        let spatial = xs.len() / gamma.len();
        let (mean, inv) = moments(xs, eps);
        let (mut s1, mut s2) = (0f64, 0f64); // Σ dxhat, Σ dxhat·xhat
        for c in 0..gamma.len() {
            let (g, b) = (gamma[c], beta[c]);
            let r = c * spatial..(c + 1) * spatial;
            // dxhat and the terms of Σ dy·xhat, Σ dy, Σ dxhat, Σ dxhat·xhat for one element.
            let term = |xv: f32, dzv: f32| {
                let xhat = (xv - mean) * inv;
                let dy = if silu {
                    let y = xhat * g + b;
                    let s = sigmoid(y);
                    dzv * s * (1.0 + y * (1.0 - s))
                } else {
                    dzv
                };
                let dxhat = dy * g;
                (dxhat, [dy * xhat, dy, dxhat, dxhat * xhat])
            };
            // Four sums, each over LANES partials (vectorised), then the tail.
            let mut acc = [[0f32; LANES]; 4];
            let full = spatial / LANES * LANES;
            let (dc, xc, zc) = (&mut dxs[r.clone()], &xs[r.clone()], &dzs[r]);
            for ((d, x), z) in dc[..full]
                .chunks_exact_mut(LANES)
                .zip(xc[..full].chunks_exact(LANES))
                .zip(zc[..full].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    let (dxhat, t) = term(x[l], z[l]);
                    d[l] = dxhat;
                    for (a, tk) in acc.iter_mut().zip(t) {
                        a[l] += tk;
                    }
                }
            }
            let mut sums = acc.map(|a| a.iter().sum::<f32>());
            for i in full..spatial {
                let (dxhat, t) = term(xc[i], zc[i]);
                dc[i] = dxhat;
                for (sk, tk) in sums.iter_mut().zip(t) {
                    *sk += tk;
                }
            }
            dgs[c] = sums[0];
            dbs[c] = sums[1];
            s1 += sums[2] as f64;
            s2 += sums[3] as f64;
        }
        let n = xs.len() as f64;
        let (m1, m2) = ((s1 / n) as f32, (s2 / n) as f32);
        for (d, &xv) in dxs.iter_mut().zip(xs) {
            let xhat = (xv - mean) * inv;
            *d = inv * (*d - m1 - xhat * m2);
        }
    }
}

/// Gradients of GroupNorm (then SiLU when `silu`) of `x` = `[batch, channels, spatial]`:
/// returns (dx, dgamma, dbeta) for the output gradient `dz` (same shape as `x`).
#[allow(clippy::too_many_arguments)]
pub fn group_norm_backward(
    x: &[f32],
    dz: &[f32],
    batch: usize,
    channels: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    silu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), dz.len(), "group_norm_backward: shapes");
    let cpg = channels / groups;
    let group_len = x.len() / (batch * groups).max(1);
    let mut dx = vec![0f32; x.len()];
    // Per (sample, channel) partials of dgamma and dbeta.
    let mut dg = vec![0f32; batch * channels];
    let mut db = vec![0f32; batch * channels];
    if group_len == 0 {
        return (dx, vec![0.0; channels], vec![0.0; channels]);
    }
    dx.par_chunks_mut(group_len)
        .zip(x.par_chunks(group_len).zip(dz.par_chunks(group_len)))
        .zip(dg.par_chunks_mut(cpg).zip(db.par_chunks_mut(cpg)))
        .enumerate()
        .for_each(|(i, ((dxs, (xs, dzs)), (dgs, dbs)))| {
            let c = (i % groups) * cpg..(i % groups + 1) * cpg;
            group_backward(
                xs,
                dzs,
                dxs,
                dgs,
                dbs,
                &gamma[c.clone()],
                &beta[c],
                eps,
                silu,
            );
        });
    (dx, sum_rows(&dg, channels), sum_rows(&db, channels))
}

/// Rows per task of the row-wise kernels (fixed, so partial sums do not depend on threads).
const ROW_BLOCK: usize = 64;

/// LayerNorm over the last axis of `x` = `[rows, d]` into `out`.
pub fn layer_norm(x: &[f32], out: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    assert_eq!(x.len(), out.len(), "layer_norm: shapes");
    if d == 0 {
        return;
    }
    out.par_chunks_mut(ROW_BLOCK * d)
        .zip(x.par_chunks(ROW_BLOCK * d))
        .for_each(|(o, xs)| {
            for (orow, xrow) in o.chunks_exact_mut(d).zip(xs.chunks_exact(d)) {
                let (mean, inv) = moments(xrow, eps);
                for ((ov, &xv), (&g, &b)) in orow.iter_mut().zip(xrow).zip(gamma.iter().zip(beta)) {
                    *ov = (xv - mean) * inv * g + b;
                }
            }
        });
}

multiversion! {
    /// A block of rows of [`layer_norm_backward`] (`gamma.len()` = row length); adds the
    /// block's dgamma and dbeta partials to `dgs`, `dbs`.
    fn rows_backward(
        xs: &[f32],
        dys: &[f32],
        dxs: &mut [f32],
        dgs: &mut [f32],
        dbs: &mut [f32],
        gamma: &[f32],
        eps: f32,
    ) {
        let d = gamma.len();
        for ((dxr, xr), dyr) in dxs
            .chunks_exact_mut(d)
            .zip(xs.chunks_exact(d))
            .zip(dys.chunks_exact(d))
        {
            let (mean, inv) = moments(xr, eps);
            let (mut s1, mut s2) = (0f32, 0f32);
            for j in 0..d {
                let xhat = (xr[j] - mean) * inv;
                dgs[j] += dyr[j] * xhat;
                dbs[j] += dyr[j];
                let dxhat = dyr[j] * gamma[j];
                s1 += dxhat;
                s2 += dxhat * xhat;
                dxr[j] = dxhat;
            }
            let (m1, m2) = (s1 / d as f32, s2 / d as f32);
            for j in 0..d {
                let xhat = (xr[j] - mean) * inv;
                dxr[j] = inv * (dxr[j] - m1 - xhat * m2);
            }
        }
    }
}

/// Gradients of LayerNorm over the last axis of `x` = `[rows, d]`: (dx, dgamma, dbeta).
pub fn layer_norm_backward(
    x: &[f32],
    dy: &[f32],
    d: usize,
    gamma: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), dy.len(), "layer_norm_backward: shapes");
    let mut dx = vec![0f32; x.len()];
    if d == 0 || x.is_empty() {
        return (dx, vec![0.0; d], vec![0.0; d]);
    }
    let blocks = (x.len() / d).div_ceil(ROW_BLOCK);
    let mut dg = vec![0f32; blocks * d];
    let mut db = vec![0f32; blocks * d];
    dx.par_chunks_mut(ROW_BLOCK * d)
        .zip(
            x.par_chunks(ROW_BLOCK * d)
                .zip(dy.par_chunks(ROW_BLOCK * d)),
        )
        .zip(dg.par_chunks_mut(d).zip(db.par_chunks_mut(d)))
        .for_each(|((dxs, (xs, dys)), (dgs, dbs))| {
            rows_backward(xs, dys, dxs, dgs, dbs, gamma, eps);
        });
    (dx, sum_rows(&dg, d), sum_rows(&db, d))
}

multiversion! {
    /// A block of rows of [`geglu_backward`].
    fn geglu_rows_backward(hs: &[f32], ds: &[f32], dhs: &mut [f32], inner: usize) {
        for ((dhr, hr), dr) in dhs
            .chunks_exact_mut(2 * inner)
            .zip(hs.chunks_exact(2 * inner))
            .zip(ds.chunks_exact(inner))
        {
            let (a, g) = hr.split_at(inner);
            let (da, dg) = dhr.split_at_mut(inner);
            for j in 0..inner {
                da[j] = dr[j] * math::gelu(g[j]);
                dg[j] = dr[j] * a[j] * gelu_grad(g[j]);
            }
        }
    }
}

/// Gradient of GEGLU (`h` = `[rows, 2·inner]`, hidden half then gate half) for the output
/// gradient `dout` = `[rows, inner]`: `dh` = `[rows, 2·inner]`.
pub fn geglu_backward(h: &[f32], dout: &[f32], inner: usize) -> Vec<f32> {
    assert_eq!(h.len(), 2 * dout.len(), "geglu_backward: shapes");
    let mut dh = vec![0f32; h.len()];
    if inner == 0 {
        return dh;
    }
    dh.par_chunks_mut(2 * ROW_BLOCK * inner)
        .zip(h.par_chunks(2 * ROW_BLOCK * inner))
        .zip(dout.par_chunks(ROW_BLOCK * inner))
        .for_each(|((dhs, hs), ds)| geglu_rows_backward(hs, ds, dhs, inner));
    dh
}

/// Row-major matrix product `dst[m, n] (+)= alpha · lhs[m, k] · rhs[k, n]` with explicit
/// (column, row) strides for each operand (transposes are stride swaps).
///
/// # Safety
/// Every element addressed through the sizes and strides must be in bounds, and `dst` must
/// not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    (lhs_cs, lhs_rs): (usize, usize),
    rhs: *const f32,
    (rhs_cs, rhs_rs): (usize, usize),
    alpha: f32,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        alpha,
        false,
        false,
        false,
        gemm::Parallelism::None,
    );
}

multiversion! {
    /// dS = P ⊙ (dP − rowsum(dP ⊙ P)) in place of `dp`, rows of `len`.
    fn softmax_backward(p: &[f32], dp: &mut [f32], len: usize) {
        for (pr, dpr) in p.chunks_exact(len).zip(dp.chunks_exact_mut(len)) {
            let dot: f32 = pr.iter().zip(dpr.iter()).map(|(a, b)| a * b).sum();
            for (g, &pv) in dpr.iter_mut().zip(pr) {
                *g = pv * (*g - dot);
            }
        }
    }
}

/// Gradients of multi-head attention on unsplit heads (see [`super::cpu::attention`]):
/// for the output gradient `dout` = `[batch, n, c]`, returns (dq, dk, dv) with the shapes of
/// q, k, v. One task per (sample, head) recomputes the probabilities.
pub fn attention_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dout: &[f32],
    dims: AttentionDims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let AttentionDims {
        batch,
        n,
        m,
        channels: c,
        heads,
    } = dims;
    assert_eq!(q.len(), batch * n * c, "attention_backward: q shape");
    assert_eq!(k.len(), batch * m * c, "attention_backward: k shape");
    assert_eq!(v.len(), k.len(), "attention_backward: v shape");
    assert_eq!(dout.len(), q.len(), "attention_backward: dout shape");
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; q.len()],
        vec![0f32; k.len()],
        vec![0f32; k.len()],
    );
    if q.is_empty() || m == 0 {
        return (dq, dk, dv);
    }
    let d = c / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let (pq, pk, pv) = (
        SharedMut::new(&mut dq),
        SharedMut::new(&mut dk),
        SharedMut::new(&mut dv),
    );
    (0..batch * heads).into_par_iter().for_each_init(
        || (Scratch::new(n * m), Scratch::new(n * m)),
        |(p, dp), task| {
            let (p, dp) = (p.get(), dp.get());
            let (b, h) = (task / heads, task % heads);
            let q0 = b * n * c + h * d;
            let kv0 = b * m * c + h * d;
            // SAFETY: the shapes are checked above; task (b, h) alone writes the channels of
            // head h of sample b in dq, dk and dv; p and dp are [n, m] buffers of this task.
            unsafe {
                // P = softmax(scale · Q Kᵀ)
                matmul(
                    n,
                    m,
                    d,
                    p.as_mut_ptr(),
                    m,
                    false,
                    q.as_ptr().add(q0),
                    (1, c),
                    k.as_ptr().add(kv0),
                    (c, 1),
                    scale,
                );
                softmax_rows(p, m);
                // dV = Pᵀ dO
                matmul(
                    m,
                    d,
                    n,
                    pv.get().add(kv0),
                    c,
                    false,
                    p.as_ptr(),
                    (m, 1),
                    dout.as_ptr().add(q0),
                    (1, c),
                    1.0,
                );
                // dP = dO Vᵀ
                matmul(
                    n,
                    m,
                    d,
                    dp.as_mut_ptr(),
                    m,
                    false,
                    dout.as_ptr().add(q0),
                    (1, c),
                    v.as_ptr().add(kv0),
                    (c, 1),
                    1.0,
                );
                // dS = P ⊙ (dP − rowsum(dP ⊙ P))
                softmax_backward(p, dp, m);
                // dQ = scale · dS K
                matmul(
                    n,
                    d,
                    m,
                    pq.get().add(q0),
                    c,
                    false,
                    dp.as_ptr(),
                    (1, m),
                    k.as_ptr().add(kv0),
                    (1, c),
                    scale,
                );
                // dK = scale · dSᵀ Q
                matmul(
                    m,
                    d,
                    n,
                    pk.get().add(kv0),
                    c,
                    false,
                    dp.as_ptr(),
                    (m, 1),
                    q.as_ptr().add(q0),
                    (1, c),
                    scale,
                );
            }
        },
    );
    (dq, dk, dv)
}

multiversion! {
/// Adds the columns `dcol` = `[c_in·kh·kw, p]` of one sample back onto its input gradient
/// `dx` = `[c_in, h, w]` (the adjoint of im2col, upsampling folded in).
fn col2im_sample(dcol: &[f32], dx: &mut [f32], d: &ConvDims) {
    let (ih, iw) = if d.upsample {
        (2 * d.h, 2 * d.w)
    } else {
        (d.h, d.w)
    };
    let shift = usize::from(d.upsample);
    let p = d.out_h * d.out_w;
    for ci in 0..d.c_in {
        let plane = &mut dx[ci * d.h * d.w..(ci + 1) * d.h * d.w];
        for ky in 0..d.kh {
            for kx in 0..d.kw {
                let row = &dcol[((ci * d.kh + ky) * d.kw + kx) * p..][..p];
                for oy in 0..d.out_h {
                    let iy = (oy * d.stride + ky) as isize - d.pad_top as isize;
                    if iy < 0 || iy >= ih as isize {
                        continue;
                    }
                    let dst = &mut plane[(iy as usize >> shift) * d.w..][..d.w];
                    let src = &row[oy * d.out_w..(oy + 1) * d.out_w];
                    // Output columns whose input column ox·stride + kx − pad_left lies inside
                    // the (upsampled) image.
                    let lo = d.pad_left.saturating_sub(kx).div_ceil(d.stride).min(d.out_w);
                    let hi = (iw + d.pad_left)
                        .saturating_sub(kx)
                        .div_ceil(d.stride)
                        .clamp(lo, d.out_w);
                    if d.stride == 1 && !d.upsample {
                        if hi > lo {
                            let s0 = lo + kx - d.pad_left;
                            for (o, &g) in dst[s0..s0 + hi - lo].iter_mut().zip(&src[lo..hi]) {
                                *o += g;
                            }
                        }
                        continue;
                    }
                    // Branch-free: every index is inside the image here.
                    for (ox, &g) in src.iter().enumerate().take(hi).skip(lo) {
                        dst[(ox * d.stride + kx - d.pad_left) >> shift] += g;
                    }
                }
            }
        }
    }
}
}

/// Gradients of [`super::cpu::conv2d`] for the output gradient `dy` = `[batch, c_out, out_h,
/// out_w]`: (dx `[batch, c_in, h, w]`, dweight `[c_out, c_in, kh, kw]`, dbias `[c_out]`).
/// One task per sample; the weight and bias gradients are summed over samples in order.
pub fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    d: ConvDims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (dx, dw, dbias) = conv2d_backward_per_sample(x, weight, dy, d);
    (dx, dw, sum_rows(&dbias, d.c_out))
}

/// [`conv2d_backward`] with the bias gradient per sample, `[batch, c_out]` (the gradient of
/// [`super::cpu::ConvInit::offset`]).
pub fn conv2d_backward_per_sample(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    d: ConvDims,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let k = d.c_in * d.kh * d.kw;
    let p = d.out_h * d.out_w;
    let in_len = d.c_in * d.h * d.w;
    assert_eq!(x.len(), d.batch * in_len, "conv2d_backward: input shape");
    assert_eq!(weight.len(), d.c_out * k, "conv2d_backward: weight shape");
    assert_eq!(
        dy.len(),
        d.batch * d.c_out * p,
        "conv2d_backward: output shape"
    );
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; d.batch * d.c_out * k];
    let mut dbias = vec![0f32; d.batch * d.c_out];
    if x.is_empty() || dy.is_empty() {
        return (dx, vec![0.0; d.c_out * k], dbias);
    }
    dx.par_chunks_mut(in_len)
        .zip(
            dw.par_chunks_mut(d.c_out * k)
                .zip(dbias.par_chunks_mut(d.c_out)),
        )
        .enumerate()
        .for_each_init(
            || (Scratch::new(k * p), Scratch::new(k * p)),
            |(col, dcol), (b, (dxs, (dws, dbs)))| {
                let dyb = &dy[b * d.c_out * p..(b + 1) * d.c_out * p];
                let xb = &x[b * in_len..(b + 1) * in_len];
                // A 1x1 convolution's im2col matrix is the input itself, and its col2im the
                // identity: read x and write dx directly.
                let pointwise = d.is_pointwise();
                let col: &[f32] = if pointwise {
                    xb
                } else {
                    let col = col.get();
                    im2col_sample(xb, col, &d);
                    col
                };
                let dcol_out = if pointwise {
                    dxs.as_mut_ptr()
                } else {
                    dcol.get().as_mut_ptr()
                };
                // SAFETY: dws is [c_out, k], dyb [c_out, p], col [k, p], dcol [k, p] and the
                // weight [c_out, k], all row-major; the strides below stay inside them.
                unsafe {
                    // dW_b = dY_b colᵀ
                    matmul(
                        d.c_out,
                        k,
                        p,
                        dws.as_mut_ptr(),
                        k,
                        false,
                        dyb.as_ptr(),
                        (1, p),
                        col.as_ptr(),
                        (p, 1),
                        1.0,
                    );
                    // dcol = Wᵀ dY_b
                    matmul(
                        k,
                        p,
                        d.c_out,
                        dcol_out,
                        p,
                        false,
                        weight.as_ptr(),
                        (k, 1),
                        dyb.as_ptr(),
                        (1, p),
                        1.0,
                    );
                }
                if !pointwise {
                    col2im_sample(dcol.get(), dxs, &d);
                }
                for (o, row) in dbs.iter_mut().zip(dyb.chunks_exact(p)) {
                    *o = row.iter().map(|&v| v as f64).sum::<f64>() as f32;
                }
            },
        );
    (dx, sum_rows(&dw, d.c_out * k), dbias)
}

/// Rows per task of [`linear`] and [`linear_backward`].
const LINEAR_ROWS: usize = 256;

/// `out[rows, d_out] = x[rows, d_in] · weight[d_in, d_out] + bias` (burn's weight layout).
pub fn linear(x: &[f32], weight: &[f32], bias: &[f32], out: &mut [f32], d_in: usize) {
    let d_out = bias.len();
    assert_eq!(weight.len(), d_in * d_out, "linear: weight shape");
    assert_eq!(
        x.len() / d_in.max(1),
        out.len() / d_out.max(1),
        "linear: rows"
    );
    if out.is_empty() {
        return;
    }
    out.par_chunks_mut(LINEAR_ROWS * d_out)
        .zip(x.par_chunks(LINEAR_ROWS * d_in.max(1)))
        .for_each(|(o, xs)| {
            for row in o.chunks_exact_mut(d_out) {
                row.copy_from_slice(bias);
            }
            let rows = o.len() / d_out;
            // SAFETY: o is [rows, d_out], xs [rows, d_in], weight [d_in, d_out], row-major.
            unsafe {
                matmul(
                    rows,
                    d_out,
                    d_in,
                    o.as_mut_ptr(),
                    d_out,
                    true,
                    xs.as_ptr(),
                    (1, d_in),
                    weight.as_ptr(),
                    (1, d_out),
                    1.0,
                );
            }
        });
}

/// Gradients of [`linear`] for the output gradient `dy` = `[rows, d_out]`:
/// (dx `[rows, d_in]`, dweight `[d_in, d_out]`, dbias `[d_out]`).
pub fn linear_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    d_in: usize,
    d_out: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = dy.len() / d_out.max(1);
    assert_eq!(x.len(), rows * d_in, "linear_backward: input shape");
    assert_eq!(weight.len(), d_in * d_out, "linear_backward: weight shape");
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; d_in * d_out];
    if rows == 0 || d_in == 0 || d_out == 0 {
        return (dx, dw, vec![0.0; d_out]);
    }
    dx.par_chunks_mut(LINEAR_ROWS * d_in)
        .zip(dy.par_chunks(LINEAR_ROWS * d_out))
        .for_each(|(dxs, dys)| {
            let r = dys.len() / d_out;
            // SAFETY: dxs is [r, d_in], dys [r, d_out], weightᵀ [d_out, d_in] by strides.
            unsafe {
                matmul(
                    r,
                    d_in,
                    d_out,
                    dxs.as_mut_ptr(),
                    d_in,
                    false,
                    dys.as_ptr(),
                    (1, d_out),
                    weight.as_ptr(),
                    (d_out, 1),
                    1.0,
                );
            }
        });
    // dW = xᵀ dy: one product over all rows (the matmul splits the output, not the sum).
    // SAFETY: dw is [d_in, d_out], xᵀ [d_in, rows] by strides, dy [rows, d_out].
    unsafe {
        gemm::gemm(
            d_in,
            d_out,
            rows,
            dw.as_mut_ptr(),
            1,
            d_out as isize,
            false,
            x.as_ptr(),
            d_in as isize,
            1,
            dy.as_ptr(),
            1,
            d_out as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
    let blocks = rows.div_ceil(LINEAR_ROWS);
    let mut db = vec![0f32; blocks * d_out];
    db.par_chunks_mut(d_out)
        .zip(dy.par_chunks(LINEAR_ROWS * d_out))
        .for_each(|(dbs, dys)| {
            for row in dys.chunks_exact(d_out) {
                for (o, &v) in dbs.iter_mut().zip(row) {
                    *o += v;
                }
            }
        });
    (dx, dw, sum_rows(&db, d_out))
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // finite differences index several arrays at once
mod tests {
    use super::super::cpu;
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn rnd(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n).map(|_| lcg(seed)).collect()
    }

    /// Central-difference gradient of `Σ f(x) · w` with respect to x[i].
    fn numeric(f: &dyn Fn(&[f32]) -> Vec<f32>, x: &[f32], w: &[f32], i: usize) -> f64 {
        let h = 1e-2f32;
        let mut xp = x.to_vec();
        xp[i] += h;
        let mut xm = x.to_vec();
        xm[i] -= h;
        let dot = |y: Vec<f32>| {
            y.iter()
                .zip(w)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
        };
        (dot(f(&xp)) - dot(f(&xm))) / (2.0 * h as f64)
    }

    fn close(a: f32, b: f64, what: &str) {
        assert!(
            (a as f64 - b).abs() <= 2e-3 * (1.0 + b.abs()),
            "{what}: analytic {a} vs numeric {b}"
        );
    }

    #[test]
    fn group_norm_gradients_match_finite_differences() {
        let (b, c, s, g) = (2, 4, 6, 2);
        let mut seed = 11;
        let x = rnd(&mut seed, b * c * s);
        let gamma = rnd(&mut seed, c);
        let beta = rnd(&mut seed, c);
        let w = rnd(&mut seed, b * c * s);
        for silu in [false, true] {
            let f = |x: &[f32], gm: &[f32], bt: &[f32]| {
                let mut out = vec![0.0; x.len()];
                cpu::group_norm(x, &mut out, b, c, g, gm, bt, 1e-5, silu);
                out
            };
            let (dx, dg, db) = group_norm_backward(&x, &w, b, c, g, &gamma, &beta, 1e-5, silu);
            for i in [0, 5, 17, 30, 47] {
                close(dx[i], numeric(&|x| f(x, &gamma, &beta), &x, &w, i), "dx");
            }
            for i in 0..c {
                close(
                    dg[i],
                    numeric(&|gm| f(&x, gm, &beta), &gamma, &w, i),
                    "dgamma",
                );
                close(
                    db[i],
                    numeric(&|bt| f(&x, &gamma, bt), &beta, &w, i),
                    "dbeta",
                );
            }
        }
    }

    #[test]
    fn layer_norm_gradients_match_finite_differences() {
        let (rows, d) = (70, 5); // more than one row block
        let mut seed = 5;
        let x = rnd(&mut seed, rows * d);
        let gamma = rnd(&mut seed, d);
        let beta = rnd(&mut seed, d);
        let w = rnd(&mut seed, rows * d);
        let f = |x: &[f32], gm: &[f32], bt: &[f32]| {
            let mut out = vec![0.0; x.len()];
            layer_norm(x, &mut out, d, gm, bt, 1e-5);
            out
        };
        let (dx, dg, db) = layer_norm_backward(&x, &w, d, &gamma, 1e-5);
        for i in [0, 3, 101, 349] {
            close(dx[i], numeric(&|x| f(x, &gamma, &beta), &x, &w, i), "dx");
        }
        for i in 0..d {
            close(
                dg[i],
                numeric(&|gm| f(&x, gm, &beta), &gamma, &w, i),
                "dgamma",
            );
            close(
                db[i],
                numeric(&|bt| f(&x, &gamma, bt), &beta, &w, i),
                "dbeta",
            );
        }
    }

    #[test]
    fn geglu_gradient_matches_finite_differences() {
        let (rows, inner) = (3, 4);
        let mut seed = 2;
        let h: Vec<f32> = rnd(&mut seed, rows * 2 * inner)
            .iter()
            .map(|v| v * 3.0)
            .collect();
        let w = rnd(&mut seed, rows * inner);
        let f = |h: &[f32]| {
            let mut out = vec![0.0; rows * inner];
            cpu::geglu(h, &mut out, inner);
            out
        };
        let dh = geglu_backward(&h, &w, inner);
        for i in 0..h.len() {
            close(dh[i], numeric(&f, &h, &w, i), "dh");
        }
    }

    #[test]
    fn attention_gradients_match_finite_differences() {
        let dims = AttentionDims {
            batch: 2,
            n: 5,
            m: 3,
            channels: 4,
            heads: 2,
        };
        let mut seed = 9;
        let q = rnd(&mut seed, 2 * 5 * 4);
        let k = rnd(&mut seed, 2 * 3 * 4);
        let v = rnd(&mut seed, 2 * 3 * 4);
        let w = rnd(&mut seed, 2 * 5 * 4);
        let f = |q: &[f32], k: &[f32], v: &[f32]| {
            let mut out = vec![0.0; q.len()];
            cpu::attention(q, k, v, &mut out, dims);
            out
        };
        let (dq, dk, dv) = attention_backward(&q, &k, &v, &w, dims);
        for i in 0..q.len() {
            close(dq[i], numeric(&|q| f(q, &k, &v), &q, &w, i), "dq");
        }
        for i in 0..k.len() {
            close(dk[i], numeric(&|k| f(&q, k, &v), &k, &w, i), "dk");
            close(dv[i], numeric(&|v| f(&q, &k, v), &v, &w, i), "dv");
        }
    }

    #[test]
    fn linear_gradients_match_finite_differences() {
        let (rows, d_in, d_out) = (300, 3, 4); // more than one row block
        let mut seed = 21;
        let x = rnd(&mut seed, rows * d_in);
        let wt = rnd(&mut seed, d_in * d_out);
        let bias = rnd(&mut seed, d_out);
        let dy = rnd(&mut seed, rows * d_out);
        let f = |x: &[f32], wt: &[f32], b: &[f32]| {
            let mut out = vec![0.0; rows * d_out];
            linear(x, wt, b, &mut out, d_in);
            out
        };
        let (dx, dw, db) = linear_backward(&x, &wt, &dy, d_in, d_out);
        for i in (0..x.len()).step_by(37) {
            close(dx[i], numeric(&|x| f(x, &wt, &bias), &x, &dy, i), "dx");
        }
        for i in 0..wt.len() {
            close(dw[i], numeric(&|w| f(&x, w, &bias), &wt, &dy, i), "dw");
        }
        for i in 0..d_out {
            close(db[i], numeric(&|b| f(&x, &wt, b), &bias, &dy, i), "db");
        }
    }

    #[test]
    fn conv2d_gradients_match_finite_differences() {
        for &(kk, stride, pad, up) in &[(3, 1, 1, false), (3, 2, 1, false), (3, 1, 1, true)] {
            let (h, w) = (4, 5);
            let (ih, iw) = if up { (2 * h, 2 * w) } else { (h, w) };
            let d = ConvDims {
                batch: 2,
                c_in: 2,
                h,
                w,
                c_out: 3,
                kh: kk,
                kw: kk,
                stride,
                pad_top: pad,
                pad_left: pad,
                out_h: (ih + 2 * pad - kk) / stride + 1,
                out_w: (iw + 2 * pad - kk) / stride + 1,
                upsample: up,
            };
            let mut seed = 4;
            let x = rnd(&mut seed, d.batch * d.c_in * h * w);
            let wt = rnd(&mut seed, d.c_out * d.c_in * kk * kk);
            let bias = rnd(&mut seed, d.c_out);
            let dy = rnd(&mut seed, d.batch * d.c_out * d.out_h * d.out_w);
            let f = |x: &[f32], wt: &[f32], bias: &[f32]| {
                let mut out = vec![0.0; dy.len()];
                cpu::conv2d(x, wt, Some(bias), &mut out, d);
                out
            };
            let (dx, dw, db) = conv2d_backward(&x, &wt, &dy, d);
            for i in (0..x.len()).step_by(7) {
                close(dx[i], numeric(&|x| f(x, &wt, &bias), &x, &dy, i), "dx");
            }
            for i in (0..wt.len()).step_by(5) {
                close(dw[i], numeric(&|wt| f(&x, wt, &bias), &wt, &dy, i), "dw");
            }
            for i in 0..d.c_out {
                close(db[i], numeric(&|b| f(&x, &wt, b), &bias, &dy, i), "db");
            }
        }
    }
}
