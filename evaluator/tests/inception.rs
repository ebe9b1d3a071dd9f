//! The FID Inception-v3 extractor against the torch / PIL reference written by
//! `tools/fixtures/inception_fid.py` (`tools/fixtures/inception/reference.safetensors`).
//!
//! The ~95 MB random-weight network is not committed: both sides derive every weight from a
//! counter-based generator (SplitMix64 of FNV-1a(key) and the value index, per-kind ranges),
//! re-implemented below; the reference records the sha256 of all weight values, which this
//! test checks before comparing outputs. The test images are integer formulas, also shared.
//!
//! Tolerances: resized pixels (PIL bicubic, [0, 255]) within 1e-3 absolute; pool3 features
//! within 1e-4 x max |feature| (torch and burn convolutions sum in different orders; the
//! measured gap is ~5e-7 x, while E_2 average- instead of max-pooling moves the features by
//! 0.35 x, `count_include_pad=True` by 0.06 x and pytorch-fid's 2·x/255 − 1 input scaling by
//! 0.007 x).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use sha2::{Digest, Sha256};
use unas_evaluator::quality::inception::{
    clean_resize, InceptionFid, InceptionV3Fid, FEATURE_DIM, INPUT_SIZE,
};
use unas_runtime::device::Cpu;

const SIZES: [usize; 3] = [32, 40, 320];
const STRIDE: usize = 7;

/// Reference tensors (shape, values as f64) by name.
type Reference = HashMap<String, (Vec<usize>, Vec<f64>)>;

/// The committed reference and its metadata.
fn reference() -> (Reference, HashMap<String, String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures/inception/reference.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let meta = SafeTensors::read_metadata(&bytes)
        .unwrap()
        .1
        .metadata()
        .clone()
        .unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            let values = match v.dtype() {
                Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
                    .collect(),
                Dtype::F64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                other => panic!("{k}: {other:?}"),
            };
            (k, (v.shape().to_vec(), values))
        })
        .collect();
    (tensors, meta)
}

// ---- the shared seeded generator (tools/fixtures/inception_fid.py: `weight_values`) ----

fn fnv1a64(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn uniform(seed: u64, i: u64) -> f64 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 40) as f64 / 16_777_216.0
}

fn value_range(key: &str, shape: &[usize]) -> (f64, f64) {
    if key.ends_with("conv.weight") {
        let a = (6.0 / (shape[1] * shape[2] * shape[3]) as f64).sqrt();
        (-a, a)
    } else if key.ends_with("bn.weight") {
        (0.6, 1.4)
    } else if key.ends_with("bn.running_var") {
        (0.5, 1.5)
    } else if key.ends_with("bn.bias") || key.ends_with("bn.running_mean") {
        (-0.2, 0.2)
    } else if key.starts_with("fc.") {
        (-0.02, 0.02)
    } else {
        panic!("no value range for {key}")
    }
}

fn weight_values(key: &str, shape: &[usize]) -> Vec<f32> {
    let (lo, hi) = value_range(key, shape);
    let seed = fnv1a64(key);
    let n: usize = shape.iter().product();
    (0..n as u64)
        .map(|i| (lo + (hi - lo) * uniform(seed, i)) as f32)
        .collect()
}

type Tensors = BTreeMap<String, (Vec<usize>, Vec<u8>)>;

/// pytorch-fid's state_dict (470 pool3 tensors + the `fc` head), seeded, as LE f32 bytes.
fn seeded() -> &'static Tensors {
    static W: OnceLock<Tensors> = OnceLock::new();
    W.get_or_init(|| {
        let mut shapes = InceptionV3Fid::<Cpu>::weight_shapes();
        shapes.push(("fc.weight".into(), vec![1008, 2048]));
        shapes.push(("fc.bias".into(), vec![1008]));
        shapes
            .into_iter()
            .map(|(k, s)| {
                let bytes = weight_values(&k, &s)
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect();
                (k, (s, bytes))
            })
            .collect()
    })
}

fn write(path: &Path, tensors: &Tensors, extra: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let mut views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (s, b))| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    for (k, dtype, s, b) in extra {
        views.push((
            k.to_string(),
            TensorView::new(*dtype, s.clone(), b).unwrap(),
        ));
    }
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The seeded weights as a file (written once per test run).
fn seeded_file() -> &'static PathBuf {
    static F: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fid-seeded.safetensors");
        write(&path, seeded(), &[]);
        (dir, path)
    })
    .1
}

/// Test image `index` (inception_fid.py: `image`) as `[3, size, size]` uint8.
fn image(index: usize, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * size * size);
    for c in 0..3 {
        for y in 0..size {
            for x in 0..size {
                let k = index;
                let v = x * x * (k + 1) + y * (7 + 3 * c) + x * y * (c + 1) + 37 * k + 50 * c;
                let v = v + ((x / 8 + y / 8) % 2) * 90;
                out.push((v % 256) as u8);
            }
        }
    }
    out
}

fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: &[f64]) -> f64 {
    a.into_iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn seeded_weights_are_the_references() {
    let (_, meta) = reference();
    let mut h = Sha256::new();
    for (k, (_, bytes)) in seeded() {
        h.update(k.as_bytes());
        h.update(bytes);
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, meta["weights_sha256"]);
}

#[test]
fn clean_resize_matches_pil() {
    let (r, _) = reference();
    for (i, &s) in SIZES.iter().enumerate() {
        let out = clean_resize(&image(i, s), s, s, INPUT_SIZE, INPUT_SIZE).unwrap();
        assert_eq!(out.len(), 3 * INPUT_SIZE * INPUT_SIZE);
        let mut sub = Vec::new();
        for c in 0..3 {
            for y in (0..INPUT_SIZE).step_by(STRIDE) {
                for x in (0..INPUT_SIZE).step_by(STRIDE) {
                    sub.push(out[(c * INPUT_SIZE + y) * INPUT_SIZE + x] as f64);
                }
            }
        }
        let (shape, want) = &r[&format!("resized_{i}")];
        assert_eq!(shape, &[3, 43, 43]);
        let d = max_abs_diff(sub, want);
        let sum: f64 = out.iter().map(|&v| v as f64).sum();
        let want_sum = r["resized_sum"].1[i];
        eprintln!("image {i} ({s}x{s} -> 299): max |diff| {d:.2e}, sum {sum} vs {want_sum}");
        assert!(d <= 1e-3, "image {i}: resized pixels differ by {d}");
        assert!((sum - want_sum).abs() <= 1e-6 * want_sum, "image {i}: sum");
    }
    // Non-square, antialiased downsampling: 40x40 -> width 17, height 23.
    let out = clean_resize(&image(1, 40), 40, 40, 23, 17).unwrap();
    let (shape, want) = &r["small"];
    assert_eq!(shape, &[3, 23, 17]);
    let d = max_abs_diff(out.iter().map(|&v| v as f64), want);
    eprintln!("40x40 -> 17x23: max |diff| {d:.2e}");
    assert!(d <= 1e-3, "small resize differs by {d}");
}

#[test]
fn features_match_torch() {
    let (r, _) = reference();
    let t = std::time::Instant::now();
    let fid = InceptionFid::load(seeded_file()).unwrap();
    eprintln!("load: {:.2?}", t.elapsed());
    assert_eq!(fid.name(), "inception-v3-fid[fid-seeded.safetensors]");
    let (shape, want) = &r["features"];
    assert_eq!(shape, &[3, FEATURE_DIM]);
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, &s) in SIZES.iter().enumerate() {
        let pixels: Vec<f32> = image(i, s).iter().map(|&v| v as f32 / 255.0).collect();
        let t = std::time::Instant::now();
        let f = fid.features(&[pixels], s).unwrap();
        let elapsed = t.elapsed();
        assert_eq!((f.len(), f.dim), (1, FEATURE_DIM));
        let row = &want[i * FEATURE_DIM..(i + 1) * FEATURE_DIM];
        let d = max_abs_diff(f.row(0).iter().map(|&v| v as f64), row);
        eprintln!(
            "image {i} ({s}x{s}): max |diff| {d:.2e} (max |feature| {scale:.3}, rel {:.2e}), {elapsed:.2?}",
            d / scale
        );
        assert!(d <= 1e-4 * scale, "image {i}: features differ by {d}");
    }
}

#[test]
fn features_reject_bad_images() {
    let fid = InceptionFid::load(seeded_file()).unwrap();
    let e = fid.features(&[vec![0.5; 10]], 4).unwrap_err().to_string();
    assert!(
        e.contains("image 0") && e.contains("expected 3 x 4 x 4"),
        "{e}"
    );
    let mut nan = vec![0.5; 3 * 16];
    nan[5] = f32::NAN;
    let e = fid.features(&[nan], 4).unwrap_err().to_string();
    assert!(e.contains("NaN"), "{e}");
}

#[test]
fn bad_weight_files_name_file_and_keys() {
    let dir = tempfile::tempdir().unwrap();

    let missing = dir.path().join("no-such-file.safetensors");
    let e = InceptionFid::load(&missing).unwrap_err().to_string();
    assert!(e.contains("no-such-file.safetensors"), "{e}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let e = InceptionFid::load(&garbage).unwrap_err().to_string();
    assert!(
        e.contains("garbage.safetensors") && e.contains("safetensors"),
        "{e}"
    );

    // The seeded file less one tensor, plus a foreign one (torchvision's aux head) and the
    // ignorable BatchNorm counter and logits head (already present).
    let mut tensors = seeded().clone();
    tensors.remove("Mixed_6e.branch7x7dbl_3.bn.running_var");
    let aux = vec![0u8; 4 * 1000 * 768];
    let path = dir.path().join("almost.safetensors");
    write(
        &path,
        &tensors,
        &[
            ("AuxLogits.fc.weight", Dtype::F32, vec![1000, 768], aux),
            (
                "Conv2d_1a_3x3.bn.num_batches_tracked",
                Dtype::I64,
                vec![],
                vec![0; 8],
            ),
        ],
    );
    let e = InceptionFid::load(&path).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("almost.safetensors"), "{e}");
    assert!(
        e.contains("1 missing tensor(s): `Mixed_6e.branch7x7dbl_3.bn.running_var` [192]"),
        "{e}"
    );
    assert!(
        e.contains("1 unused tensor(s): `AuxLogits.fc.weight`"),
        "{e}"
    );
    assert!(
        !e.contains("num_batches_tracked") && !e.contains("fc.bias"),
        "{e}"
    );

    // A tiny file: one right tensor, one mis-shaped, everything else missing.
    let mut small = Tensors::new();
    let (s, b) = seeded()["Conv2d_1a_3x3.conv.weight"].clone();
    small.insert("Conv2d_1a_3x3.conv.weight".into(), (s, b));
    small.insert(
        "Conv2d_1a_3x3.bn.weight".into(),
        (vec![16], vec![0u8; 4 * 16]),
    );
    let path = dir.path().join("tiny.safetensors");
    write(&path, &small, &[]);
    let e = InceptionFid::load(&path).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("tiny.safetensors"), "{e}");
    assert!(
        e.contains("468 missing tensor(s): `Conv2d_1a_3x3.bn.bias` [32]"),
        "{e}"
    );
    assert!(e.contains("and 460 more"), "{e}");
    assert!(
        e.contains(
            "1 tensor(s) of the wrong shape: `Conv2d_1a_3x3.bn.weight` is [16], expected [32]"
        ),
        "{e}"
    );
}
