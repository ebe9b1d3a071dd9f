//! The FID feature extractor: Inception-v3 pool3 features under the clean-fid protocol.
//!
//! The network is pytorch-fid's `fid_inception_v3()` — torchvision's Inception-v3 with the
//! `FIDInceptionA/C/E_1/E_2` blocks, i.e. the TF "2015-12-05" graph ported: average pools that
//! ignore padded zeros (`count_include_pad=False`) and a max pool in the last block's pool
//! branch. Every convolution is a [`BasicConv2d`] (bias-free conv, BatchNorm in eval mode with
//! eps 1e-3, ReLU). Features are the 2048-d global average pool after `Mixed_7c` (pool3).
//!
//! Weights are a user-supplied safetensors file with pytorch-fid's `state_dict` names
//! (`Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, …), e.g.
//! `pt_inception-2015-12-05-6726825d.pth` converted with `safetensors.torch.save_file`; F32,
//! F16 and BF16 are read. The logits head (`fc.weight`, `fc.bias`) and BatchNorm's
//! `num_batches_tracked` counters are allowed and ignored; any other missing, unused or
//! mis-shaped tensor is an error that names the file and the keys.
//!
//! Preprocessing follows clean-fid (`resize="clean"`, Parmar et al. 2022):
//! 1. images in [0, 1] are quantised to uint8, `floor(255 x + 0.5)` clamped to 0..=255 (as
//!    torchvision's `save_image` writes generated samples);
//! 2. each channel is resized to 299x299 as a float image by PIL's `Image.resize(BICUBIC)` in
//!    mode "F" (a = −0.5, antialiased: the kernel widens by the scale factor when
//!    downsampling; horizontal pass first, f32 intermediate), then clipped to [0, 255]
//!    ([`pil_bicubic_resize`], [`clean_resize`]);
//! 3. the network input is (x − 128) / 128, clean-fid's `InceptionV3W.forward` normalisation.
//!    (pytorch-fid's `normalize_input` uses 2·x/255 − 1 = (x − 127.5) / 127.5 instead; the two
//!    differ by at most 0.4 % of the input range, so FIDs from the two protocols are not
//!    interchangeable.)
//!
//! Only features from this extractor, with real TF-ported weights, may be called FID.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, max_pool2d};
use burn::tensor::{Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_runtime::error::RuntimeError;
use unas_runtime::weights::{join, Weights};

use super::metrics::Features;
use crate::EvalError;

/// Width of the pool3 feature vector.
pub const FEATURE_DIM: usize = 2048;
/// Side of the network input after the clean resize.
pub const INPUT_SIZE: usize = 299;

/// Images per forward pass in [`InceptionFid::features`].
const BATCH: usize = 8;

/// Reads tensors for the modules, or (without a file) lists the keys and shapes they ask for.
/// Missing and mis-shaped tensors are collected, not returned at the first one, so that one
/// error can name them all.
struct Loader {
    weights: Option<Weights>,
    asked: Vec<(String, Vec<usize>)>,
    missing: Vec<String>,
    mismatched: Vec<String>,
    other: Vec<String>,
}

impl Loader {
    fn new(weights: Option<Weights>) -> Self {
        Self {
            weights,
            asked: Vec::new(),
            missing: Vec::new(),
            mismatched: Vec::new(),
            other: Vec::new(),
        }
    }

    fn tensor<B: Backend, const D: usize>(
        &mut self,
        key: String,
        dims: [usize; D],
        device: &B::Device,
    ) -> Option<Tensor<B, D>> {
        self.asked.push((key.clone(), dims.to_vec()));
        let weights = self.weights.as_mut()?;
        match weights.tensor::<B, D>(&key, dims, device) {
            Ok(t) => Some(t),
            Err(RuntimeError::MissingTensor { .. }) => {
                self.missing.push(format!("`{key}` {dims:?}"));
                None
            }
            Err(RuntimeError::ShapeMismatch { found, .. }) => {
                self.mismatched
                    .push(format!("`{key}` is {found:?}, expected {dims:?}"));
                None
            }
            Err(e) => {
                self.other.push(e.to_string());
                None
            }
        }
    }
}

/// pytorch-fid's `FIDInceptionV3` up to pool3 (no logits head).
#[derive(Module, Debug)]
pub struct InceptionV3Fid<B: Backend> {
    conv2d_1a_3x3: BasicConv2d<B>,
    conv2d_2a_3x3: BasicConv2d<B>,
    conv2d_2b_3x3: BasicConv2d<B>,
    conv2d_3b_1x1: BasicConv2d<B>,
    conv2d_4a_3x3: BasicConv2d<B>,
    mixed_5b: InceptionA<B>,
    mixed_5c: InceptionA<B>,
    mixed_5d: InceptionA<B>,
    mixed_6a: InceptionB<B>,
    mixed_6b: InceptionC<B>,
    mixed_6c: InceptionC<B>,
    mixed_6d: InceptionC<B>,
    mixed_6e: InceptionC<B>,
    mixed_7a: InceptionD<B>,
    mixed_7b: InceptionE<B>,
    mixed_7c: InceptionE<B>,
}

impl<B: Backend> InceptionV3Fid<B> {
    /// The network with zero convolutions and identity BatchNorms (load weights next).
    pub fn new(device: &B::Device) -> Self {
        Self {
            conv2d_1a_3x3: BasicConv2d::new([3, 32], [3, 3], 2, [0, 0], device),
            conv2d_2a_3x3: BasicConv2d::square(32, 32, 3, 0, device),
            conv2d_2b_3x3: BasicConv2d::square(32, 64, 3, 1, device),
            conv2d_3b_1x1: BasicConv2d::square(64, 80, 1, 0, device),
            conv2d_4a_3x3: BasicConv2d::square(80, 192, 3, 0, device),
            mixed_5b: InceptionA::new(192, 32, device),
            mixed_5c: InceptionA::new(256, 64, device),
            mixed_5d: InceptionA::new(288, 64, device),
            mixed_6a: InceptionB::new(288, device),
            mixed_6b: InceptionC::new(768, 128, device),
            mixed_6c: InceptionC::new(768, 160, device),
            mixed_6d: InceptionC::new(768, 160, device),
            mixed_6e: InceptionC::new(768, 192, device),
            mixed_7a: InceptionD::new(768, device),
            mixed_7b: InceptionE::new(1280, false, device),
            mixed_7c: InceptionE::new(2048, true, device),
        }
    }

    /// Pool3 features: normalised images `[n, 3, h, w]` (values (x − 128) / 128 for x in
    /// [0, 255]; h = w = 299 under the FID protocol, at least 75) → `[n, 2048]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = self.conv2d_1a_3x3.forward(x); // [n, 32, 149, 149]
        x = self.conv2d_2a_3x3.forward(x); // [n, 32, 147, 147]
        x = max3s2(self.conv2d_2b_3x3.forward(x)); // [n, 64, 73, 73]
        x = self.conv2d_3b_1x1.forward(x); // [n, 80, 73, 73]
        x = max3s2(self.conv2d_4a_3x3.forward(x)); // [n, 192, 35, 35]
        x = self.mixed_5b.forward(x); // [n, 256, 35, 35]
        x = self.mixed_5c.forward(x); // [n, 288, 35, 35]
        x = self.mixed_5d.forward(x); // [n, 288, 35, 35]
        x = self.mixed_6a.forward(x); // [n, 768, 17, 17]
        x = self.mixed_6b.forward(x);
        x = self.mixed_6c.forward(x);
        x = self.mixed_6d.forward(x);
        x = self.mixed_6e.forward(x); // [n, 768, 17, 17]
        x = self.mixed_7a.forward(x); // [n, 1280, 8, 8]
        x = self.mixed_7b.forward(x); // [n, 2048, 8, 8]
        x = self.mixed_7c.forward(x); // [n, 2048, 8, 8]
        let [n, c, _, _] = x.dims();
        adaptive_avg_pool2d(x, [1, 1]).reshape([n, c])
    }

    fn load(&mut self, l: &mut Loader, device: &B::Device) {
        let blocks: [(&mut BasicConv2d<B>, &str); 5] = [
            (&mut self.conv2d_1a_3x3, "Conv2d_1a_3x3"),
            (&mut self.conv2d_2a_3x3, "Conv2d_2a_3x3"),
            (&mut self.conv2d_2b_3x3, "Conv2d_2b_3x3"),
            (&mut self.conv2d_3b_1x1, "Conv2d_3b_1x1"),
            (&mut self.conv2d_4a_3x3, "Conv2d_4a_3x3"),
        ];
        for (block, name) in blocks {
            block.load(l, name, device);
        }
        self.mixed_5b.load(l, "Mixed_5b", device);
        self.mixed_5c.load(l, "Mixed_5c", device);
        self.mixed_5d.load(l, "Mixed_5d", device);
        self.mixed_6a.load(l, "Mixed_6a", device);
        self.mixed_6b.load(l, "Mixed_6b", device);
        self.mixed_6c.load(l, "Mixed_6c", device);
        self.mixed_6d.load(l, "Mixed_6d", device);
        self.mixed_6e.load(l, "Mixed_6e", device);
        self.mixed_7a.load(l, "Mixed_7a", device);
        self.mixed_7b.load(l, "Mixed_7b", device);
        self.mixed_7c.load(l, "Mixed_7c", device);
    }

    /// The tensors a weight file must hold, with their shapes, in pytorch-fid's names
    /// (`fc.*` and `*.num_batches_tracked` may be present too and are ignored).
    pub fn weight_shapes() -> Vec<(String, Vec<usize>)> {
        let device = B::Device::default();
        let mut net = InceptionV3Fid::<B>::new(&device);
        let mut l = Loader::new(None);
        net.load(&mut l, &device);
        l.asked
    }
}

/// Keys a pytorch-fid state_dict may hold that pool3 does not use.
fn ignored_key(key: &str) -> bool {
    key == "fc.weight" || key == "fc.bias" || key.ends_with(".num_batches_tracked")
}

/// `items` joined, at most `max` of them, then "and N more".
fn list(items: &[String], max: usize) -> String {
    let mut s = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > max {
        s.push_str(&format!(", and {} more", items.len() - max));
    }
    s
}

/// The FID extractor: weights loaded, clean-fid preprocessing, pool3 features.
#[derive(Debug)]
pub struct InceptionFid {
    net: InceptionV3Fid<Cpu>,
    name: String,
    file: PathBuf,
}

impl InceptionFid {
    /// Loads pytorch-fid-named weights from a safetensors file. Fails, naming the file, when
    /// the file is unreadable or any tensor is missing, mis-shaped or unused (listing them).
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let file_err = |message: String| EvalError::File {
            file: path.to_path_buf(),
            message,
        };
        let weights = Weights::open(path).map_err(|e| match e {
            RuntimeError::Io { source, .. } => file_err(source.to_string()),
            RuntimeError::Format { message, .. } => {
                file_err(format!("not a valid safetensors file: {message}"))
            }
            other => file_err(other.to_string()),
        })?;
        let mut in_file: Vec<String> = weights.shapes().into_keys().collect();
        in_file.sort();
        let device = Default::default();
        let mut net = InceptionV3Fid::<Cpu>::new(&device);
        let mut l = Loader::new(Some(weights));
        net.load(&mut l, &device);
        let asked: BTreeSet<&str> = l.asked.iter().map(|(k, _)| k.as_str()).collect();
        let unused: Vec<String> = in_file
            .iter()
            .filter(|k| !asked.contains(k.as_str()) && !ignored_key(k))
            .map(|k| format!("`{k}`"))
            .collect();
        let clean = l.missing.is_empty()
            && l.mismatched.is_empty()
            && unused.is_empty()
            && l.other.is_empty();
        if !clean {
            let mut parts = Vec::new();
            if !l.missing.is_empty() {
                parts.push(format!(
                    "{} missing tensor(s): {}",
                    l.missing.len(),
                    list(&l.missing, 8)
                ));
            }
            if !l.mismatched.is_empty() {
                parts.push(format!(
                    "{} tensor(s) of the wrong shape: {}",
                    l.mismatched.len(),
                    list(&l.mismatched, 8)
                ));
            }
            if !unused.is_empty() {
                parts.push(format!(
                    "{} unused tensor(s): {}",
                    unused.len(),
                    list(&unused, 8)
                ));
            }
            parts.extend(l.other.iter().take(4).cloned());
            return Err(file_err(format!(
                "not an FID Inception-v3 weight file (pytorch-fid state_dict names expected): {}",
                parts.join("; ")
            )));
        }
        let file_name = path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into(),
        );
        Ok(Self {
            net,
            name: format!("inception-v3-fid[{file_name}]"),
            file: path.to_path_buf(),
        })
    }

    /// The extractor's label for metrics: `inception-v3-fid[<file name>]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The weight file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The network (for callers that preprocess themselves).
    pub fn network(&self) -> &InceptionV3Fid<Cpu> {
        &self.net
    }

    /// Pool3 features (`n` x 2048) of images given as `[3, size, size]` values in [0, 1]
    /// (quantised to uint8, clean-resized to 299x299, normalised; see the module docs).
    pub fn features(&self, images: &[Vec<f32>], size: usize) -> Result<Features, EvalError> {
        let expected = 3 * size * size;
        if size == 0 {
            return Err(EvalError::Unsupported("image size must be positive".into()));
        }
        let mut data = Vec::with_capacity(images.len() * FEATURE_DIM);
        let device = Default::default();
        for (b, chunk) in images.chunks(BATCH).enumerate() {
            let mut input = Vec::with_capacity(chunk.len() * 3 * INPUT_SIZE * INPUT_SIZE);
            for (j, img) in chunk.iter().enumerate() {
                let index = b * BATCH + j;
                if img.len() != expected {
                    return Err(EvalError::Unsupported(format!(
                        "image {index} has {} values, expected 3 x {size} x {size} = {expected}",
                        img.len()
                    )));
                }
                let u8s = quantise(img).ok_or_else(|| {
                    EvalError::Unsupported(format!("image {index} contains NaN or inf"))
                })?;
                let resized = clean_resize(&u8s, size, size, INPUT_SIZE, INPUT_SIZE)?;
                input.extend(resized.into_iter().map(|v| (v - 128.0) / 128.0));
            }
            let x = Tensor::<Cpu, 4>::from_data(
                TensorData::new(input, [chunk.len(), 3, INPUT_SIZE, INPUT_SIZE]),
                &device,
            );
            let f = self.net.forward(x).into_data();
            data.extend(
                f.to_vec::<f32>()
                    .map_err(|e| EvalError::Measure(format!("{e:?}")))?,
            );
        }
        Features::new(data, FEATURE_DIM)
    }
}

mod resize;
pub use resize::*;

mod blocks;
pub use blocks::*;

#[cfg(test)]
mod tests;
