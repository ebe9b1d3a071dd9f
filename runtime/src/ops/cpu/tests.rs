//! Tests of the parent module.

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
                let var =
                    xs.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
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
                                let xv = x[((b * d.c_in + ci) * d.h + (iy as usize >> s)) * d.w
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
