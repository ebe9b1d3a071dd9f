//! Fused CPU kernels on contiguous f32 slices, parallel with rayon, each compiled for AVX-512,
//! AVX2+FMA and baseline x86-64 and picked at run time.
//!
//! burn's Flex backend runs GroupNorm as ~8 separate passes, SiLU/GELU/exp as scalar libm
//! calls on one thread, GEGLU's halves through a strided iterator, and attention one head at a
//! time with scalar `expf`. These kernels replace those hot spots in the U-Net; matmuls and
//! convolutions stay with burn (the `gemm` crate, as fast as PyTorch's).

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

/// Shapes of a 2-D convolution (groups 1, dilation 1).
#[derive(Clone, Copy, Debug)]
pub struct ConvDims {
    /// Batch.
    pub batch: usize,
    /// Input channels.
    pub c_in: usize,
    /// Input height (before the optional upsampling).
    pub h: usize,
    /// Input width (before the optional upsampling).
    pub w: usize,
    /// Output channels.
    pub c_out: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Zero rows above the (upsampled) input.
    pub pad_top: usize,
    /// Zero columns left of the (upsampled) input.
    pub pad_left: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// The input is first upsampled 2x with nearest-neighbour (folded into the im2col).
    pub upsample: bool,
}

impl ConvDims {
    /// A 1x1 convolution without stride, padding or upsampling: its im2col matrix is the input
    /// itself (`[c_in, h·w]` per sample), so no copy is needed.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && !self.upsample
            && self.out_h == self.h
            && self.out_w == self.w
    }
}

multiversion! {
    /// Copies the receptive fields of output pixels `p0 .. p0 + len` of one sample `x` into
    /// columns `j0 .. j0 + len` of `col` = `[c_in·kh·kw, width]` (im2col), zero outside the
    /// input.
    #[allow(clippy::too_many_arguments)]
    fn im2col(
        x: &[f32],
        col: &mut [f32],
        width: usize,
        j0: usize,
        d: &ConvDims,
        p0: usize,
        len: usize,
    ) {
        let (ih, iw) = if d.upsample {
            (2 * d.h, 2 * d.w)
        } else {
            (d.h, d.w)
        };
        let shift = usize::from(d.upsample);
        let contiguous = d.stride == 1 && !d.upsample;
        for ci in 0..d.c_in {
            let plane = &x[ci * d.h * d.w..(ci + 1) * d.h * d.w];
            for ky in 0..d.kh {
                for kx in 0..d.kw {
                    let k = (ci * d.kh + ky) * d.kw + kx;
                    let row = &mut col[k * width + j0..k * width + j0 + len];
                    // Output columns whose input column ox·stride + kx − pad_left lies inside
                    // the (upsampled) image.
                    let ox_lo = d.pad_left.saturating_sub(kx).div_ceil(d.stride);
                    let ox_hi = (iw + d.pad_left)
                        .saturating_sub(kx)
                        .div_ceil(d.stride)
                        .min(d.out_w);
                    let mut j = 0;
                    let (mut oy, mut ox0) = (p0 / d.out_w, p0 % d.out_w);
                    while j < len {
                        let iy = (oy * d.stride + ky) as isize - d.pad_top as isize;
                        // Whole output rows of one width as the input, inside the image: one
                        // shifted copy for all of them, then each row's edge columns zeroed
                        // (instead of a short copy and two fills per row).
                        let rows = if contiguous && d.out_w == d.w && ox0 == 0 && iy >= 0 {
                            ((len - j) / d.w).min(ih.saturating_sub(iy as usize))
                        } else {
                            0
                        };
                        if rows >= 2 {
                            let n = rows * d.w;
                            let out = &mut row[j..j + n];
                            let start = (iy as usize * d.w + kx) as isize - d.pad_left as isize;
                            let a = start.max(0) as usize;
                            let b = ((start + n as isize).max(0) as usize).min(plane.len());
                            let off = (a as isize - start) as usize;
                            let copied = b.saturating_sub(a);
                            out[..off].fill(0.0);
                            out[off..off + copied].copy_from_slice(&plane[a..a + copied]);
                            out[off + copied..].fill(0.0);
                            let (lo, hi) = (ox_lo.min(d.w), ox_hi.clamp(ox_lo.min(d.w), d.w));
                            for r in out.chunks_exact_mut(d.w) {
                                r[..lo].fill(0.0);
                                r[hi..].fill(0.0);
                            }
                            j += n;
                            oy += rows;
                            continue;
                        }
                        let seg = (d.out_w - ox0).min(len - j);
                        let out = &mut row[j..j + seg];
                        if iy < 0 || iy >= ih as isize {
                            out.fill(0.0);
                        } else {
                            let src = &plane[(iy as usize >> shift) * d.w..][..d.w];
                            let lo = ox_lo.clamp(ox0, ox0 + seg);
                            let hi = ox_hi.clamp(lo, ox0 + seg);
                            out[..lo - ox0].fill(0.0);
                            out[hi - ox0..].fill(0.0);
                            let inside = &mut out[lo - ox0..hi - ox0];
                            if hi > lo && contiguous {
                                let s0 = lo + kx - d.pad_left;
                                inside.copy_from_slice(&src[s0..s0 + hi - lo]);
                            } else {
                                // Branch-free: every index is inside the image here.
                                for (t, o) in inside.iter_mut().enumerate() {
                                    let ix = (lo + t) * d.stride + kx - d.pad_left;
                                    *o = src[ix >> shift];
                                }
                            }
                        }
                        j += seg;
                        oy += 1;
                        ox0 = 0;
                    }
                }
            }
        }
    }
}

/// im2col of one whole sample `x` = `[c_in, h, w]` into `col` = `[c_in·kh·kw, out_h·out_w]`.
pub(crate) fn im2col_sample(x: &[f32], col: &mut [f32], d: &ConvDims) {
    let p = d.out_h * d.out_w;
    im2col(x, col, p, 0, d, 0, p);
}

/// The (sample, first pixel, column, length) runs of columns `c0 .. c0 + n` when columns
/// enumerate (sample, pixel) pairs of `p` pixels per sample.
fn column_runs(
    c0: usize,
    n: usize,
    p: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut c = c0;
    std::iter::from_fn(move || {
        (c < c0 + n).then(|| {
            let (b, px) = (c / p, c % p);
            let len = (p - px).min(c0 + n - c);
            let run = (b, px, c - c0, len);
            c += len;
            run
        })
    })
}

/// 2-D convolution of `x` = `[batch, c_in, h, w]` with `weight` = `[c_out, c_in, kh, kw]`
/// (torch layout, used as is: no repacking) into `out` = `[batch, c_out, out_h, out_w]`.
///
/// The columns of the im2col matrix enumerate (sample, output pixel) pairs of the whole
/// batch, so the weights are streamed once per tile of columns, not once per sample (at low
/// resolutions the convolutions are bound by reading the weights). Tiles run in parallel, each
/// doing its own im2col, matmul and copy-out; when there are fewer tiles than threads, the
/// matmul itself is parallel. The tiling depends on the shapes alone, so the result does not
/// depend on the thread count.
pub fn conv2d(x: &[f32], weight: &[f32], bias: Option<&[f32]>, out: &mut [f32], d: ConvDims) {
    let init = ConvInit {
        bias,
        ..ConvInit::default()
    };
    conv2d_fused(x, weight, init, out, d);
}

/// What a convolution's output starts from before the matmul adds to it: the bias, and
/// terms that would otherwise be separate adds over the whole output.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvInit<'a> {
    /// `[c_out]`.
    pub bias: Option<&'a [f32]>,
    /// `[batch, c_out]`, added to every pixel of each sample's channel (a ResNet's time
    /// embedding, folded into its first convolution).
    pub offset: Option<&'a [f32]>,
    /// `[batch, c_out, out_h, out_w]`, added element-wise (a ResNet's skip connection, folded
    /// into its second convolution).
    pub residual: Option<&'a [f32]>,
}

/// [`conv2d`] with the output starting from `init` instead of the bias alone.
pub fn conv2d_fused(x: &[f32], weight: &[f32], init: ConvInit, out: &mut [f32], d: ConvDims) {
    // Columns per tile: an im2col buffer of at most ~8 MiB, and at most CONV_TILE_COLS.
    let tile = (2_097_152 / (d.c_in * d.kh * d.kw).max(1)).clamp(64, CONV_TILE_COLS);
    conv2d_tiled(x, weight, init, out, d, tile);
}

/// Most columns of one tile of [`conv2d`]. Small enough that the proxy's shapes (batch 16 at
/// 16x16: 4096 columns) give every thread several tiles — with one tile per convolution its
/// im2col and copy-out ran on the calling thread alone, and a third of a 2-thread training
/// step was serial (`perf`, `bench train --arch tiny-nas`) — and large enough for an
/// efficient matmul (c_out rows by 512 columns).
const CONV_TILE_COLS: usize = 512;

/// `dst = [dst +] weight · rhs` for `weight` `[m, k]` (row-major, contiguous), `rhs` `[k, n]`
/// and `dst` `[m, n]`, each of the last two given as (pointer, row stride) with unit column
/// stride; `dst` is read first when `read_dst`.
///
/// # Safety
/// All three regions must be valid for the given shapes and strides, `dst` writable and not
/// overlapping the others.
#[allow(clippy::too_many_arguments)]
unsafe fn weight_matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: (*mut f32, usize),
    read_dst: bool,
    weight: *const f32,
    rhs: (*const f32, usize),
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.0,
        1,
        dst.1 as isize,
        read_dst,
        weight,
        1,
        k as isize,
        rhs.0,
        1,
        rhs.1 as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// [`conv2d`] with at most `tile` columns per tile.
fn conv2d_tiled(
    x: &[f32],
    weight: &[f32],
    init: ConvInit,
    out: &mut [f32],
    d: ConvDims,
    tile: usize,
) {
    let ConvInit {
        bias,
        offset,
        residual,
    } = init;
    let k = d.c_in * d.kh * d.kw;
    let p = d.out_h * d.out_w;
    assert_eq!(x.len(), d.batch * d.c_in * d.h * d.w, "conv2d: input shape");
    assert_eq!(weight.len(), d.c_out * k, "conv2d: weight shape");
    assert_eq!(out.len(), d.batch * d.c_out * p, "conv2d: output shape");
    if let Some(o) = offset {
        assert_eq!(o.len(), d.batch * d.c_out, "conv2d: offset shape");
    }
    if let Some(r) = residual {
        assert_eq!(r.len(), out.len(), "conv2d: residual shape");
    }
    if out.is_empty() {
        return;
    }
    // The constant every output pixel of (sample b, channel co) starts from.
    let start = |b: usize, co: usize| {
        bias.map_or(0.0, |v| v[co]) + offset.map_or(0.0, |v| v[b * d.c_out + co])
    };
    // Fills `row` (output pixels px .. px + row.len() of (b, co)) with what it starts from.
    let fill = |row: &mut [f32], b: usize, co: usize, px: usize| {
        let s = start(b, co);
        match residual {
            Some(r) => {
                let src = &r[(b * d.c_out + co) * p + px..][..row.len()];
                for (o, &v) in row.iter_mut().zip(src) {
                    *o = v + s;
                }
            }
            None => row.fill(s),
        }
    };
    let init = bias.is_some() || offset.is_some() || residual.is_some();
    let cols = d.batch * p;
    let threads = rayon::current_num_threads();
    // At most `tile` columns per tile, tiles of (nearly) equal size.
    let tiles = cols.div_ceil(tile.clamp(1, cols));
    let tp = cols.div_ceil(tiles);
    let tiles = cols.div_ceil(tp);
    let par = if tiles >= threads {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(threads)
    };
    let in_len = d.c_in * d.h * d.w;
    let dst = SharedMut(out.as_mut_ptr());
    (0..tiles).into_par_iter().for_each_init(
        || (Scratch::new(k * tp), Scratch::new(d.c_out * tp)),
        |(col, tmp), tile| {
            let (col, tmp) = (col.get(), tmp.get());
            let c0 = tile * tp;
            let n = tp.min(cols - c0);
            if d.is_pointwise() {
                // A 1x1 convolution is a matmul on the input as it is: per run of columns,
                // out[b, :, px..] = W · x[b, :, px..], straight into the output.
                for (b, px, _, len) in column_runs(c0, n, p) {
                    // SAFETY: out[b, co, px .. px + len] (row stride p) belongs to this tile's
                    // columns only; x[b] is [c_in, p], the weight [c_out, c_in].
                    unsafe {
                        let o = dst.get().add(b * d.c_out * p + px);
                        if init {
                            for co in 0..d.c_out {
                                fill(
                                    std::slice::from_raw_parts_mut(o.add(co * p), len),
                                    b,
                                    co,
                                    px,
                                );
                            }
                        }
                        weight_matmul(
                            d.c_out,
                            len,
                            k,
                            (o, p),
                            init,
                            weight.as_ptr(),
                            (x.as_ptr().add(b * in_len + px), p),
                            par,
                        );
                    }
                }
                return;
            }
            for (b, px, j0, len) in column_runs(c0, n, p) {
                im2col(&x[b * in_len..(b + 1) * in_len], col, n, j0, &d, px, len);
            }
            let tmp = &mut tmp[..d.c_out * n];
            if init {
                for (b, px, j0, len) in column_runs(c0, n, p) {
                    for (co, row) in tmp.chunks_exact_mut(n).enumerate() {
                        fill(&mut row[j0..j0 + len], b, co, px);
                    }
                }
            }
            // SAFETY: `tmp` is [c_out, n], `weight` [c_out, k], `col` [k, n] (row-major,
            // strides as given); all in bounds.
            unsafe {
                weight_matmul(
                    d.c_out,
                    n,
                    k,
                    (tmp.as_mut_ptr(), n),
                    init,
                    weight.as_ptr(),
                    (col.as_ptr(), n),
                    par,
                );
            }
            for (b, px, j0, len) in column_runs(c0, n, p) {
                for co in 0..d.c_out {
                    // SAFETY: out[b, co, px .. px + len] is in bounds and belongs to this
                    // tile's columns only.
                    let o = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.get().add((b * d.c_out + co) * p + px),
                            len,
                        )
                    };
                    o.copy_from_slice(&tmp[co * n + j0..co * n + j0 + len]);
                }
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    #[test]
    fn group_norm_matches_definition() {
        let (b, c, s, g) = (2, 6, 5, 3);
        let mut seed = 1;
        let x: Vec<f32> = (0..b * c * s).map(|_| lcg(&mut seed) * 3.0 + 1.0).collect();
        let gamma: Vec<f32> = (0..c).map(|_| lcg(&mut seed)).collect();
        let beta: Vec<f32> = (0..c).map(|_| lcg(&mut seed)).collect();
        for silu in [false, true] {
            let mut out = vec![0.0; x.len()];
            group_norm(&x, &mut out, b, c, g, &gamma, &beta, 1e-5, silu);
            for bi in 0..b {
                for gi in 0..g {
                    let start = (bi * c + gi * 2) * s;
                    let xs = &x[start..start + 2 * s];
                    let mean = xs.iter().map(|&v| v as f64).sum::<f64>() / xs.len() as f64;
                    let var = xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()
                        / xs.len() as f64;
                    for (j, &v) in xs.iter().enumerate() {
                        let ch = gi * 2 + j / s;
                        let mut y = (v as f64 - mean) / (var + 1e-5).sqrt() * gamma[ch] as f64
                            + beta[ch] as f64;
                        if silu {
                            y /= 1.0 + (-y).exp();
                        }
                        assert!((out[start + j] as f64 - y).abs() < 1e-5);
                    }
                }
            }
        }
    }

    #[test]
    fn attention_matches_naive() {
        let dims = AttentionDims {
            batch: 2,
            n: 37,
            m: 11,
            channels: 12,
            heads: 3,
        };
        let mut seed = 7;
        let mut rnd = |len: usize| (0..len).map(|_| lcg(&mut seed)).collect::<Vec<f32>>();
        let (b, n, m, c, h) = (dims.batch, dims.n, dims.m, dims.channels, dims.heads);
        let q = rnd(b * n * c);
        let k = rnd(b * m * c);
        let v = rnd(b * m * c);
        let mut out = vec![0.0; b * n * c];
        attention(&q, &k, &v, &mut out, dims);
        let d = c / h;
        for bi in 0..b {
            for hi in 0..h {
                for i in 0..n {
                    let s: Vec<f64> = (0..m)
                        .map(|j| {
                            (0..d)
                                .map(|t| {
                                    q[(bi * n + i) * c + hi * d + t] as f64
                                        * k[(bi * m + j) * c + hi * d + t] as f64
                                })
                                .sum::<f64>()
                                / (d as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for t in 0..d {
                        let want: f64 = (0..m)
                            .map(|j| e[j] / z * v[(bi * m + j) * c + hi * d + t] as f64)
                            .sum();
                        let got = out[(bi * n + i) * c + hi * d + t] as f64;
                        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
                    }
                }
            }
        }
    }

    /// Direct convolution in f64 for comparison.
    fn conv_naive(x: &[f32], w: &[f32], bias: &[f32], d: &ConvDims) -> Vec<f64> {
        let (ih, iw) = if d.upsample {
            (2 * d.h, 2 * d.w)
        } else {
            (d.h, d.w)
        };
        let s = usize::from(d.upsample);
        let mut out = vec![0.0; d.batch * d.c_out * d.out_h * d.out_w];
        for b in 0..d.batch {
            for co in 0..d.c_out {
                for oy in 0..d.out_h {
                    for ox in 0..d.out_w {
                        let mut acc = bias[co] as f64;
                        for ci in 0..d.c_in {
                            for ky in 0..d.kh {
                                for kx in 0..d.kw {
                                    let iy = (oy * d.stride + ky) as isize - d.pad_top as isize;
                                    let ix = (ox * d.stride + kx) as isize - d.pad_left as isize;
                                    if iy < 0 || ix < 0 || iy >= ih as isize || ix >= iw as isize {
                                        continue;
                                    }
                                    let xv = x[((b * d.c_in + ci) * d.h + (iy as usize >> s))
                                        * d.w
                                        + (ix as usize >> s)];
                                    let wv = w[((co * d.c_in + ci) * d.kh + ky) * d.kw + kx];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        out[((b * d.c_out + co) * d.out_h + oy) * d.out_w + ox] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn conv2d_matches_naive() {
        let mut seed = 3;
        // (kernel, stride, pad, upsample, h, w)
        for &(kk, stride, pad, up, h, w) in &[
            (3, 1, 1, false, 5, 7),
            (3, 2, 1, false, 6, 5),
            (3, 1, 1, true, 3, 4),
            (1, 1, 0, false, 4, 3),
            (5, 1, 2, false, 6, 4),
            (3, 1, 1, false, 1, 1),
            (3, 1, 1, false, 2, 9),
        ] {
            let (ih, iw) = if up { (2 * h, 2 * w) } else { (h, w) };
            let d = ConvDims {
                batch: 2,
                c_in: 3,
                h,
                w,
                c_out: 5,
                kh: kk,
                kw: kk,
                stride,
                pad_top: pad,
                pad_left: pad,
                out_h: (ih + 2 * pad - kk) / stride + 1,
                out_w: (iw + 2 * pad - kk) / stride + 1,
                upsample: up,
            };
            let x: Vec<f32> = (0..d.batch * d.c_in * h * w)
                .map(|_| lcg(&mut seed))
                .collect();
            let wt: Vec<f32> = (0..d.c_out * d.c_in * kk * kk)
                .map(|_| lcg(&mut seed))
                .collect();
            let bias: Vec<f32> = (0..d.c_out).map(|_| lcg(&mut seed)).collect();
            let want = conv_naive(&x, &wt, &bias, &d);
            // One tile for the whole batch, and tiles that end inside samples and rows.
            for tile in [usize::MAX, 7, 23] {
                let mut out = vec![0.0; d.batch * d.c_out * d.out_h * d.out_w];
                conv2d_tiled(
                    &x,
                    &wt,
                    ConvInit {
                        bias: Some(&bias),
                        ..ConvInit::default()
                    },
                    &mut out,
                    d,
                    tile,
                );
                for (o, w) in out.iter().zip(&want) {
                    assert!((*o as f64 - w).abs() < 1e-5, "{d:?}: {o} vs {w}");
                }
            }
        }
    }

    #[test]
    fn conv2d_does_not_depend_on_the_thread_count() {
        let mut seed = 11;
        // 2 x 12 x 12 = 288 columns per sample: tiles of 512 end inside samples.
        let d = ConvDims {
            batch: 7,
            c_in: 8,
            h: 12,
            w: 12,
            c_out: 16,
            kh: 3,
            kw: 3,
            stride: 1,
            pad_top: 1,
            pad_left: 1,
            out_h: 12,
            out_w: 12,
            upsample: false,
        };
        let x: Vec<f32> = (0..d.batch * d.c_in * 144)
            .map(|_| lcg(&mut seed))
            .collect();
        let wt: Vec<f32> = (0..d.c_out * d.c_in * 9).map(|_| lcg(&mut seed)).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0; d.batch * d.c_out * 144];
            pool.install(|| conv2d(&x, &wt, None, &mut out, d));
            out
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
        let want = conv_naive(&x, &wt, &vec![0.0; d.c_out], &d);
        for (o, w) in one.iter().zip(&want) {
            assert!((*o as f64 - w).abs() < 1e-5, "{o} vs {w}");
        }
        // The 1x1 path (no im2col) likewise, with a bias.
        let p = ConvDims {
            kh: 1,
            kw: 1,
            pad_top: 0,
            pad_left: 0,
            ..d
        };
        assert!(p.is_pointwise());
        let wt: Vec<f32> = (0..p.c_out * p.c_in).map(|_| lcg(&mut seed)).collect();
        let bias: Vec<f32> = (0..p.c_out).map(|_| lcg(&mut seed)).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0; p.batch * p.c_out * 144];
            pool.install(|| conv2d(&x, &wt, Some(&bias), &mut out, p));
            out
        };
        let one = run(1);
        assert_eq!(one, run(2));
        assert_eq!(one, run(3));
        let want = conv_naive(&x, &wt, &bias, &p);
        for (o, w) in one.iter().zip(&want) {
            assert!((*o as f64 - w).abs() < 1e-5, "{o} vs {w}");
        }
    }

    #[test]
    fn transpose_swaps_the_last_two_axes() {
        for (b, r, c) in [(2, 5, 37), (1, 33, 16), (3, 1, 1)] {
            let x: Vec<f32> = (0..b * r * c).map(|i| i as f32).collect();
            let mut out = vec![0.0; x.len()];
            transpose(&x, &mut out, b, r, c);
            for bi in 0..b {
                for i in 0..r {
                    for j in 0..c {
                        assert_eq!(out[(bi * c + j) * r + i], x[(bi * r + i) * c + j]);
                    }
                }
            }
        }
    }

    #[test]
    fn geglu_halves() {
        let h = vec![1.0, 2.0, 0.5, -1.0, 3.0, 4.0, 0.0, 2.0];
        let mut out = vec![0.0; 4];
        geglu(&h, &mut out, 2);
        let want = [
            1.0 * math::gelu(0.5),
            2.0 * math::gelu(-1.0),
            3.0 * math::gelu(0.0),
            4.0 * math::gelu(2.0),
        ];
        assert_eq!(out, want);
    }
}
