//! Weight-loading errors: a missing, mis-shaped or left-over tensor is one error that names
//! the key (and both shapes), never a silently random parameter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use unas_runtime::{RuntimeError, UNet2DConditionModel};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tools/fixtures/unet")
        .join(name)
}

fn arch(name: &str) -> unas_space::UNetArch {
    unas_space::load_arch(fixture(name).join("arch.toml").to_str().unwrap()).unwrap()
}

/// The tensors of a fixture's weights: key -> (dtype, shape, bytes).
fn tensors(name: &str) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(fixture(name).join("weights.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, (v.dtype(), v.shape().to_vec(), v.data().to_vec())))
        .collect()
}

fn write(dir: &Path, map: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) -> PathBuf {
    let views: Vec<(String, TensorView)> = map
        .iter()
        .map(|(k, (dt, shape, data))| {
            (
                k.clone(),
                TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let path = dir.join("weights.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

fn load(arch: &unas_space::UNetArch, path: &Path) -> Result<(), RuntimeError> {
    UNet2DConditionModel::<Flex>::load(arch, path, &Default::default()).map(|_| ())
}

#[test]
fn unchanged_weights_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &tensors("tiny"));
    load(&arch("tiny"), &path).unwrap();
}

#[test]
fn missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut map = tensors("tiny");
    let key = "up_blocks.1.attentions.2.transformer_blocks.0.attn2.to_k.weight";
    let (_, shape, _) = map.remove(key).expect("fixture has the key");
    let err = load(&arch("tiny"), &write(dir.path(), &map)).unwrap_err();
    match &err {
        RuntimeError::MissingTensor {
            key: k, expected, ..
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, &shape);
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains(key), "{err}");
}

#[test]
fn mis_shaped_tensor_names_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mut map = tensors("tiny");
    let key = "down_blocks.1.resnets.0.conv1.weight";
    let entry = map.get_mut(key).unwrap();
    let original = entry.1.clone();
    // Same number of elements, transposed in/out: only the shape check can catch it.
    entry.1 = vec![original[1], original[0], original[2], original[3]];
    let err = load(&arch("tiny"), &write(dir.path(), &map)).unwrap_err();
    match &err {
        RuntimeError::ShapeMismatch {
            key: k,
            expected,
            found,
            ..
        } => {
            assert_eq!(k, key);
            assert_eq!(expected, &original);
            assert_eq!(found[..2], [original[1], original[0]]);
        }
        other => panic!("unexpected error {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(key) && msg.contains("[16, 8, 3, 3]"), "{msg}");
}

#[test]
fn left_over_tensor_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut map = tensors("tiny");
    map.insert(
        "down_blocks.9.resnets.0.conv1.weight".into(),
        (Dtype::F32, vec![2], vec![0; 8]),
    );
    let err = load(&arch("tiny"), &write(dir.path(), &map)).unwrap_err();
    match &err {
        RuntimeError::UnexpectedTensors { count, first, .. } => {
            assert_eq!(*count, 1);
            assert_eq!(first, "down_blocks.9.resnets.0.conv1.weight");
        }
        other => panic!("unexpected error {other}"),
    }
}

#[test]
fn weights_of_another_layout_are_rejected() {
    // diffusers-layout weights (`resnets.{k}`) for the flexible layout (`modules_list.{j}`).
    let err = load(
        &arch("tiny-nas"),
        &fixture("tiny").join("weights.safetensors"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::MissingTensor { .. } | RuntimeError::ShapeMismatch { .. }
        ),
        "{err}"
    );
}

#[test]
fn non_float_dtype_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut map = tensors("tiny");
    let key = "conv_in.bias";
    let entry = map.get_mut(key).unwrap();
    entry.0 = Dtype::I32;
    let err = load(&arch("tiny"), &write(dir.path(), &map)).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::UnsupportedDtype { key: k, .. } if k == key),
        "{err}"
    );
}
