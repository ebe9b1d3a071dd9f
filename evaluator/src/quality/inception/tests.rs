//! Tests of the parent module.

use super::*;

#[test]
fn weight_shapes_match_pytorch_fid() {
    let shapes = InceptionV3Fid::<Cpu>::weight_shapes();
    // 94 BasicConv2d blocks x (conv weight + 4 BatchNorm tensors).
    assert_eq!(shapes.len(), 94 * 5);
    let params: usize = shapes
        .iter()
        .filter(|(k, _)| !k.contains("running"))
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    // torchvision inception_v3(aux_logits=False) without fc: 23,834,568 − 2048·1000 − 1000.
    assert_eq!(params, 21_785_568);
    assert!(shapes.contains(&(
        "Mixed_7c.branch_pool.conv.weight".into(),
        vec![192, 2048, 1, 1]
    )));
}

#[test]
fn resize_keeps_constants_and_identity() {
    let src = vec![7.5f32; 5 * 6];
    for &(oh, ow) in &[(11, 13), (2, 3), (5, 6)] {
        let r = pil_bicubic_resize(&src, 5, 6, oh, ow).unwrap();
        assert!(r.iter().all(|&v| (v - 7.5).abs() < 1e-5), "{oh}x{ow}");
    }
    let ramp: Vec<f32> = (0..30).map(|v| v as f32).collect();
    assert_eq!(pil_bicubic_resize(&ramp, 5, 6, 5, 6).unwrap(), ramp);
    assert!(pil_bicubic_resize(&ramp, 5, 5, 5, 6).is_err());
    assert!(pil_bicubic_resize(&ramp, 5, 6, 0, 6).is_err());
}

#[test]
fn quantise_rounds_and_rejects_nan() {
    assert_eq!(
        quantise(&[0.0, 1.0, 0.5, -1.0, 2.0, 1.0 / 255.0]),
        Some(vec![0, 255, 128, 0, 255, 1])
    );
    assert_eq!(quantise(&[f32::NAN]), None);
}
