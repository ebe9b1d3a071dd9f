//! 2-D convolution on the CPU: im2col tiles times the weight with `gemm`, the bias, a
//! per-sample channel offset or a residual written with the output, and nearest-neighbour 2x
//! upsampling folded into the im2col read.

#[allow(unused_imports)]
use super::*;

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
pub(super) fn conv2d_tiled(
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
