//! Fused CPU kernels on contiguous f32 slices, parallel with rayon, each compiled for AVX-512,
//! AVX2+FMA and baseline x86-64 and picked at run time.
//!
//! burn's Flex backend runs GroupNorm as ~8 separate passes, SiLU/GELU/exp as scalar libm
//! calls on one thread, GEGLU's halves through a strided iterator, and attention one head at a
//! time with scalar `expf`. These kernels replace those hot spots in the U-Net; matmuls stay
//! with burn (the `gemm` crate, as fast as PyTorch's), and convolutions ([`conv`]) run that
//! `gemm` over tiles of an im2col buffer that is never materialised whole, with bias, a
//! per-channel offset or a residual added as the output is written.

use rayon::prelude::*;

use super::math;

/// Defines `fn $name` that runs `$body` compiled for the best instruction set available.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])* $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn v4($($arg: $ty),*) { generic($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($arg: $ty),*) { generic($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    // SAFETY: the CPU supports every feature `v4` is compiled with.
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: as above, for `v3`.
                    return unsafe { v3($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// A per-thread scratch buffer, reused across calls so large temporaries are neither
/// allocated nor zeroed again on every task. Its contents are stale: callers overwrite every
/// element they read.
pub(crate) struct Scratch {
    buf: Vec<f32>,
    len: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Scratch {
    /// A buffer of `len` floats from this thread's pool (grown, zeroed once, when too short).
    pub(crate) fn new(len: usize) -> Self {
        let mut buf = POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Self { buf, len }
    }

    /// The buffer.
    pub(crate) fn get(&mut self) -> &mut [f32] {
        &mut self.buf[..self.len]
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        // Never borrowed across user code, so a task nested on this thread (rayon work
        // stealing inside a parallel matmul) finds the pool free.
        POOL.with(|p| p.borrow_mut().push(buf));
    }
}

/// Sum with 16 independent accumulators (vectorisable, and more accurate than a running sum).
#[inline(always)]
fn sum16(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = x.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for i in 0..16 {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

multiversion! {
    /// Normalises one group (`gamma.len()` channels of `x.len() / gamma.len()` elements each).
    fn norm_group(x: &[f32], out: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32, silu: bool) {
        let n = x.len() as f32;
        let mean = sum16(x, |v| v) / n;
        let var = sum16(x, |v| (v - mean) * (v - mean)) / n;
        let inv = 1.0 / (var + eps).sqrt();
        let spatial = x.len() / gamma.len();
        for (c, (xc, oc)) in x.chunks_exact(spatial).zip(out.chunks_exact_mut(spatial)).enumerate() {
            let scale = inv * gamma[c];
            let shift = beta[c] - mean * scale;
            if silu {
                for (o, &v) in oc.iter_mut().zip(xc) {
                    *o = math::silu(v * scale + shift);
                }
            } else {
                for (o, &v) in oc.iter_mut().zip(xc) {
                    *o = v * scale + shift;
                }
            }
        }
    }
}

/// GroupNorm (then SiLU when `silu`) of `x` = `[batch, channels, spatial]`, row-major, into
/// `out` (same shape). `gamma`, `beta`: `[channels]`; `channels` divisible by `groups`.
#[allow(clippy::too_many_arguments)]
pub fn group_norm(
    x: &[f32],
    out: &mut [f32],
    batch: usize,
    channels: usize,
    groups: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    silu: bool,
) {
    assert_eq!(out.len(), x.len(), "group_norm: output length");
    assert_eq!(channels % groups, 0, "group_norm: channels % groups");
    assert_eq!(x.len() % (batch * channels), 0, "group_norm: shape");
    let cpg = channels / groups;
    // One group: cpg consecutive channels of one sample.
    let group_len = x.len() / (batch * groups);
    if group_len == 0 {
        return;
    }
    out.par_chunks_mut(group_len)
        .zip(x.par_chunks(group_len))
        .enumerate()
        .for_each(|(i, (o, xs))| {
            let c0 = (i % groups) * cpg;
            norm_group(xs, o, &gamma[c0..c0 + cpg], &beta[c0..c0 + cpg], eps, silu);
        });
}

multiversion! {
    /// `out[i] = a[i] * gelu(g[i])`.
    fn geglu_row(a: &[f32], g: &[f32], out: &mut [f32]) {
        for ((o, &a), &g) in out.iter_mut().zip(a).zip(g) {
            *o = a * math::gelu(g);
        }
    }
}

/// GEGLU: `h` = `[rows, 2 * inner]` (hidden half, then gate half) → `out` = `[rows, inner]`,
/// `hidden * gelu(gate)` with the exact (erf) GELU.
pub fn geglu(h: &[f32], out: &mut [f32], inner: usize) {
    assert_eq!(h.len(), 2 * out.len(), "geglu: shapes");
    if inner == 0 {
        return;
    }
    // Rows per task: about 64k outputs, enough to amortise rayon.
    let rows = (65_536 / inner).max(1);
    out.par_chunks_mut(rows * inner)
        .zip(h.par_chunks(2 * rows * inner))
        .for_each(|(o, hs)| {
            for (orow, hrow) in o.chunks_exact_mut(inner).zip(hs.chunks_exact(2 * inner)) {
                let (a, g) = hrow.split_at(inner);
                geglu_row(a, g, orow);
            }
        });
}

/// Maximum with 16 independent lanes (vectorisable; NaN-free inputs assumed).
#[inline(always)]
fn max16(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 16];
    let chunks = x.chunks_exact(16);
    let mut m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for c in chunks {
        for i in 0..16 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    for a in acc {
        m = if a > m { a } else { m };
    }
    m
}

multiversion! {
    /// In-place softmax of each row of `scores` (`[rows, len]`).
    pub(crate) fn softmax_rows(scores: &mut [f32], len: usize) {
        for row in scores.chunks_exact_mut(len) {
            let max = max16(row);
            for v in row.iter_mut() {
                *v = math::exp(*v - max);
            }
            let inv = 1.0 / sum16(row, |v| v);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// A raw pointer that rayon tasks may share: each task writes a disjoint region.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(*mut f32);
// SAFETY: only used to write disjoint output regions from parallel tasks (see `attention`).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Wraps the buffer's pointer.
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self(buf.as_mut_ptr())
    }

    /// The pointer (a method, so closures capture the `Send` wrapper, not its field).
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Transposes each `[rows, cols]` matrix of `x` (`batch` of them, row-major) into `out`
/// (`[cols, rows]` each): parallel over matrices and bands of 16 output rows; each band reads
/// the input row by row (16 contiguous values) and writes 16 output streams.
pub fn transpose(x: &[f32], out: &mut [f32], batch: usize, rows: usize, cols: usize) {
    assert_eq!(x.len(), batch * rows * cols, "transpose: input shape");
    assert_eq!(out.len(), x.len(), "transpose: output shape");
    if x.is_empty() {
        return;
    }
    const T: usize = 16;
    out.par_chunks_mut(rows * cols)
        .zip(x.par_chunks(rows * cols))
        .for_each(|(o, src)| {
            o.par_chunks_mut(T * rows)
                .enumerate()
                .for_each(|(band, ob)| {
                    let c0 = band * T;
                    let t = ob.len() / rows;
                    for i in 0..rows {
                        let s = &src[i * cols + c0..i * cols + c0 + t];
                        for (j, &v) in s.iter().enumerate() {
                            ob[j * rows + i] = v;
                        }
                    }
                });
        });
}

/// Shapes of a multi-head attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionDims {
    /// Batch.
    pub batch: usize,
    /// Query length.
    pub n: usize,
    /// Key/value length.
    pub m: usize,
    /// Channels (heads × head dim).
    pub channels: usize,
    /// Heads.
    pub heads: usize,
}

/// Multi-head attention without splitting heads into separate tensors: `q` = `[batch, n, c]`,
/// `k`, `v` = `[batch, m, c]`, head `h` owns channels `h·d .. (h+1)·d`; writes
/// softmax(q_h k_hᵀ / √d) v_h into the same channels of `out` = `[batch, n, c]`.
///
/// Parallel over (batch, head, block of query rows); each task keeps a `[rows, m]` score block.
pub fn attention(q: &[f32], k: &[f32], v: &[f32], out: &mut [f32], dims: AttentionDims) {
    let AttentionDims {
        batch,
        n,
        m,
        channels: c,
        heads,
    } = dims;
    assert_eq!(c % heads, 0, "attention: channels % heads");
    assert_eq!(q.len(), batch * n * c, "attention: q shape");
    assert_eq!(k.len(), batch * m * c, "attention: k shape");
    assert_eq!(v.len(), batch * m * c, "attention: v shape");
    assert_eq!(out.len(), batch * n * c, "attention: out shape");
    if batch * n * c == 0 || m == 0 {
        return;
    }
    let d = c / heads;
    let scale = 1.0 / (d as f32).sqrt();
    // Score block of ~1 MiB (fits L2), at least 32 rows so the matmuls are not too skinny.
    let rows = (262_144 / m).clamp(32, n.max(32));
    let blocks = n.div_ceil(rows);
    let dst = SharedMut(out.as_mut_ptr());
    (0..batch * heads * blocks).into_par_iter().for_each_init(
        || Scratch::new(rows * m),
        |scores, task| {
            let scores = scores.get();
            let b = task / (heads * blocks);
            let h = (task / blocks) % heads;
            let r0 = (task % blocks) * rows;
            let r = rows.min(n - r0);
            let scores = &mut scores[..r * m];
            let q0 = (b * n + r0) * c + h * d;
            let kv0 = b * m * c + h * d;
            // SAFETY: all pointers address in-bounds elements for the given sizes and
            // strides (checked shapes above); the destination block (rows r0..r0+r of
            // batch b, channels of head h) is written by this task only.
            unsafe {
                // scores[r, m] = scale * Q[r, d] · K[m, d]ᵀ
                gemm::gemm(
                    r,
                    m,
                    d,
                    scores.as_mut_ptr(),
                    1,
                    m as isize,
                    false,
                    q.as_ptr().add(q0),
                    1,
                    c as isize,
                    k.as_ptr().add(kv0),
                    c as isize,
                    1,
                    0.0,
                    scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            softmax_rows(scores, m);
            // SAFETY: as above.
            unsafe {
                // out[r, d] = P[r, m] · V[m, d]
                gemm::gemm(
                    r,
                    d,
                    m,
                    dst.get().add(q0),
                    1,
                    c as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    m as isize,
                    v.as_ptr().add(kv0),
                    1,
                    c as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        },
    );
}

// After `multiversion!`: macros are in scope only below their definition.
mod conv;
pub use conv::*;

#[cfg(test)]
mod tests;
