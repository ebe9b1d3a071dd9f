//! Tests of the parent module.
#![allow(clippy::needless_range_loop)] // finite differences index several arrays at once

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
