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

// After the imports of `multiversion!` (macros are in scope only below them).
mod conv;
mod linear;
pub use conv::*;
pub use linear::*;

#[cfg(test)]
mod tests;
