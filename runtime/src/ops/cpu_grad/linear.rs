//! A linear layer on the CPU and its gradients.

#[allow(unused_imports)]
use super::*;

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
