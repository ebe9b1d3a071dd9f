//! Gradients of the CPU convolution: the adjoint of im2col, and the input, weight and bias
//! gradients (also per sample).

#[allow(unused_imports)]
use super::*;

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
