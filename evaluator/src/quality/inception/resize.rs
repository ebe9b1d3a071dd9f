//! The clean-fid image protocol: uint8 quantisation and PIL's bicubic resize (antialiased,
//! in float), as clean-fid prepares images for Inception-v3 (Parmar et al. 2022).

#[allow(unused_imports)]
use super::*;

/// Values in [0, 1] → uint8 as `floor(255 x + 0.5)` clamped to 0..=255; `None` on NaN/inf.
pub fn quantise(image: &[f32]) -> Option<Vec<u8>> {
    image
        .iter()
        .map(|&v| {
            v.is_finite()
                .then(|| (v * 255.0 + 0.5).floor().clamp(0.0, 255.0) as u8)
        })
        .collect()
}

/// clean-fid's `resize="clean"`: each channel of a `[3, h, w]` uint8 image resized as a float
/// image with [`pil_bicubic_resize`] to `[3, out_h, out_w]`, clipped to [0, 255].
pub fn clean_resize(
    image: &[u8],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Result<Vec<f32>, EvalError> {
    let plane = h * w;
    if image.len() != 3 * plane {
        return Err(EvalError::Unsupported(format!(
            "an image of {} values is not 3 x {h} x {w}",
            image.len()
        )));
    }
    let mut out = Vec::with_capacity(3 * out_h * out_w);
    for channel in image.chunks_exact(plane) {
        let channel: Vec<f32> = channel.iter().map(|&v| v as f32).collect();
        let r = pil_bicubic_resize(&channel, h, w, out_h, out_w)?;
        out.extend(r.into_iter().map(|v| v.clamp(0.0, 255.0)));
    }
    Ok(out)
}

/// PIL's bicubic filter (a = −0.5), support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index and normalised weights (Pillow's `precompute_coeffs`
/// for the whole input range: the support widens by the scale when downsampling).
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let mut k: Vec<f64> = (xmin..xmax.max(xmin))
                .map(|x| bicubic((x as f64 - center + 0.5) / filterscale))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|v| *v /= ww);
            }
            (xmin, k)
        })
        .collect()
}

/// PIL `Image.resize((out_w, out_h), BICUBIC)` of a mode-"F" (f32) image `[h, w]`, row-major:
/// horizontal pass, f32 intermediate, vertical pass, f64 accumulation; an axis whose size does
/// not change is copied. Fails on an empty size or a `src` that is not `h * w` long.
pub fn pil_bicubic_resize(
    src: &[f32],
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
) -> Result<Vec<f32>, EvalError> {
    if h == 0 || w == 0 || out_h == 0 || out_w == 0 || src.len() != h * w {
        return Err(EvalError::Unsupported(format!(
            "cannot resize {} values as {h}x{w} to {out_h}x{out_w}",
            src.len()
        )));
    }
    let tmp: Vec<f32> = if out_w == w {
        src.to_vec()
    } else {
        let coeffs = coefficients(w, out_w);
        let mut tmp = vec![0f32; h * out_w];
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            for (xx, (xmin, k)) in coeffs.iter().enumerate() {
                let ss: f64 = k
                    .iter()
                    .zip(&row[*xmin..])
                    .map(|(k, &v)| v as f64 * k)
                    .sum();
                tmp[y * out_w + xx] = ss as f32;
            }
        }
        tmp
    };
    if out_h == h {
        return Ok(tmp);
    }
    let coeffs = coefficients(h, out_h);
    let mut out = vec![0f32; out_h * out_w];
    for (yy, (ymin, k)) in coeffs.iter().enumerate() {
        for x in 0..out_w {
            let ss: f64 = k
                .iter()
                .enumerate()
                .map(|(i, k)| tmp[(ymin + i) * out_w + x] as f64 * k)
                .sum();
            out[yy * out_w + x] = ss as f32;
        }
    }
    Ok(out)
}
