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

/// Conv (no bias) → BatchNorm (eval, eps 1e-3) → ReLU: torchvision's `BasicConv2d`.
#[derive(Module, Debug)]
pub struct BasicConv2d<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
}

impl<B: Backend> BasicConv2d<B> {
    /// A zero-initialised block: `kernel`, `stride` and symmetric `padding` as `[h, w]`.
    pub fn new(
        channels: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
        device: &B::Device,
    ) -> Self {
        let conv = Conv2dConfig::new(channels, kernel)
            .with_stride([stride, stride])
            .with_padding(PaddingConfig2d::Explicit(
                padding[0], padding[1], padding[0], padding[1],
            ))
            .with_bias(false)
            .with_initializer(Initializer::Zeros)
            .init(device);
        let bn = BatchNormConfig::new(channels[1])
            .with_epsilon(1e-3)
            .init(device);
        Self { conv, bn }
    }

    /// A `k`x`k` block with stride 1 and padding `pad`.
    fn square(c_in: usize, c_out: usize, k: usize, pad: usize, device: &B::Device) -> Self {
        Self::new([c_in, c_out], [k, k], 1, [pad, pad], device)
    }

    /// `[n, c_in, h, w]` → `[n, c_out, h', w']`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.bn.forward(unas_runtime::ops::conv2d(&self.conv, x)))
    }

    fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        let conv = join(prefix, "conv");
        let bn = join(prefix, "bn");
        if let Some(w) = l.tensor(join(&conv, "weight"), self.conv.weight.dims(), device) {
            self.conv.weight = Param::from_tensor(w);
        }
        let c = self.bn.gamma.dims();
        if let Some(t) = l.tensor(join(&bn, "weight"), c, device) {
            self.bn.gamma = Param::from_tensor(t);
        }
        if let Some(t) = l.tensor(join(&bn, "bias"), c, device) {
            self.bn.beta = Param::from_tensor(t);
        }
        if let Some(t) = l.tensor(join(&bn, "running_mean"), c, device) {
            self.bn.running_mean = RunningState::new(t);
        }
        if let Some(t) = l.tensor(join(&bn, "running_var"), c, device) {
            self.bn.running_var = RunningState::new(t);
        }
    }
}

/// 3x3, stride 1, padding 1 average pool over the unpadded pixels only (TF's average pool).
fn avg3<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false)
}

/// 3x3 max pool with stride 2, no padding.
fn max3s2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    max_pool2d(x, [3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// Loads every named [`BasicConv2d`] field of a block under `prefix.<field name>`.
macro_rules! load_fields {
    ($self:ident, $l:ident, $prefix:ident, $device:ident; $($field:ident),+ $(,)?) => {
        $( $self.$field.load($l, &join($prefix, stringify!($field)), $device); )+
    };
}

/// `FIDInceptionA`: 1x1, 5x5, double 3x3 and average-pool branches.
#[derive(Module, Debug)]
pub struct InceptionA<B: Backend> {
    branch1x1: BasicConv2d<B>,
    branch5x5_1: BasicConv2d<B>,
    branch5x5_2: BasicConv2d<B>,
    branch3x3dbl_1: BasicConv2d<B>,
    branch3x3dbl_2: BasicConv2d<B>,
    branch3x3dbl_3: BasicConv2d<B>,
    branch_pool: BasicConv2d<B>,
}

impl<B: Backend> InceptionA<B> {
    /// `c_in` input channels; output 224 + `pool_features` channels.
    pub fn new(c_in: usize, pool_features: usize, device: &B::Device) -> Self {
        Self {
            branch1x1: BasicConv2d::square(c_in, 64, 1, 0, device),
            branch5x5_1: BasicConv2d::square(c_in, 48, 1, 0, device),
            branch5x5_2: BasicConv2d::square(48, 64, 5, 2, device),
            branch3x3dbl_1: BasicConv2d::square(c_in, 64, 1, 0, device),
            branch3x3dbl_2: BasicConv2d::square(64, 96, 3, 1, device),
            branch3x3dbl_3: BasicConv2d::square(96, 96, 3, 1, device),
            branch_pool: BasicConv2d::square(c_in, pool_features, 1, 0, device),
        }
    }

    /// `[n, c_in, h, w]` → `[n, 224 + pool_features, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self
            .branch5x5_2
            .forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = self.branch_pool.forward(avg3(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }

    fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        load_fields!(self, l, prefix, device; branch1x1, branch5x5_1, branch5x5_2,
            branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool);
    }
}

/// `InceptionB` (`Mixed_6a`): stride-2 reduction, 35x35 → 17x17.
#[derive(Module, Debug)]
pub struct InceptionB<B: Backend> {
    branch3x3: BasicConv2d<B>,
    branch3x3dbl_1: BasicConv2d<B>,
    branch3x3dbl_2: BasicConv2d<B>,
    branch3x3dbl_3: BasicConv2d<B>,
}

impl<B: Backend> InceptionB<B> {
    /// `c_in` input channels; output 480 + `c_in` channels.
    pub fn new(c_in: usize, device: &B::Device) -> Self {
        Self {
            branch3x3: BasicConv2d::new([c_in, 384], [3, 3], 2, [0, 0], device),
            branch3x3dbl_1: BasicConv2d::square(c_in, 64, 1, 0, device),
            branch3x3dbl_2: BasicConv2d::square(64, 96, 3, 1, device),
            branch3x3dbl_3: BasicConv2d::new([96, 96], [3, 3], 2, [0, 0], device),
        }
    }

    /// `[n, c_in, h, w]` → `[n, 480 + c_in, (h − 3) / 2 + 1, (w − 3) / 2 + 1]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = max3s2(x);
        Tensor::cat(vec![b3, bd, bp], 1)
    }

    fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        load_fields!(self, l, prefix, device; branch3x3, branch3x3dbl_1, branch3x3dbl_2,
            branch3x3dbl_3);
    }
}

/// `FIDInceptionC`: factorised 7x7 branches at 17x17.
#[derive(Module, Debug)]
pub struct InceptionC<B: Backend> {
    branch1x1: BasicConv2d<B>,
    branch7x7_1: BasicConv2d<B>,
    branch7x7_2: BasicConv2d<B>,
    branch7x7_3: BasicConv2d<B>,
    branch7x7dbl_1: BasicConv2d<B>,
    branch7x7dbl_2: BasicConv2d<B>,
    branch7x7dbl_3: BasicConv2d<B>,
    branch7x7dbl_4: BasicConv2d<B>,
    branch7x7dbl_5: BasicConv2d<B>,
    branch_pool: BasicConv2d<B>,
}

impl<B: Backend> InceptionC<B> {
    /// `c_in` input channels, `c7` channels inside the 7x7 branches; output 768 channels.
    pub fn new(c_in: usize, c7: usize, device: &B::Device) -> Self {
        let row = |a, b| BasicConv2d::new([a, b], [1, 7], 1, [0, 3], device);
        let col = |a, b| BasicConv2d::new([a, b], [7, 1], 1, [3, 0], device);
        Self {
            branch1x1: BasicConv2d::square(c_in, 192, 1, 0, device),
            branch7x7_1: BasicConv2d::square(c_in, c7, 1, 0, device),
            branch7x7_2: row(c7, c7),
            branch7x7_3: col(c7, 192),
            branch7x7dbl_1: BasicConv2d::square(c_in, c7, 1, 0, device),
            branch7x7dbl_2: col(c7, c7),
            branch7x7dbl_3: row(c7, c7),
            branch7x7dbl_4: col(c7, c7),
            branch7x7dbl_5: row(c7, 192),
            branch_pool: BasicConv2d::square(c_in, 192, 1, 0, device),
        }
    }

    /// `[n, c_in, h, w]` → `[n, 768, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.branch1x1.forward(x.clone());
        let mut b7 = self.branch7x7_1.forward(x.clone());
        b7 = self.branch7x7_3.forward(self.branch7x7_2.forward(b7));
        let mut bd = self.branch7x7dbl_1.forward(x.clone());
        for conv in [
            &self.branch7x7dbl_2,
            &self.branch7x7dbl_3,
            &self.branch7x7dbl_4,
            &self.branch7x7dbl_5,
        ] {
            bd = conv.forward(bd);
        }
        let bp = self.branch_pool.forward(avg3(x));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }

    fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        load_fields!(self, l, prefix, device; branch1x1, branch7x7_1, branch7x7_2, branch7x7_3,
            branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5,
            branch_pool);
    }
}

/// `InceptionD` (`Mixed_7a`): stride-2 reduction, 17x17 → 8x8.
#[derive(Module, Debug)]
pub struct InceptionD<B: Backend> {
    branch3x3_1: BasicConv2d<B>,
    branch3x3_2: BasicConv2d<B>,
    branch7x7x3_1: BasicConv2d<B>,
    branch7x7x3_2: BasicConv2d<B>,
    branch7x7x3_3: BasicConv2d<B>,
    branch7x7x3_4: BasicConv2d<B>,
}

impl<B: Backend> InceptionD<B> {
    /// `c_in` input channels; output 512 + `c_in` channels.
    pub fn new(c_in: usize, device: &B::Device) -> Self {
        Self {
            branch3x3_1: BasicConv2d::square(c_in, 192, 1, 0, device),
            branch3x3_2: BasicConv2d::new([192, 320], [3, 3], 2, [0, 0], device),
            branch7x7x3_1: BasicConv2d::square(c_in, 192, 1, 0, device),
            branch7x7x3_2: BasicConv2d::new([192, 192], [1, 7], 1, [0, 3], device),
            branch7x7x3_3: BasicConv2d::new([192, 192], [7, 1], 1, [3, 0], device),
            branch7x7x3_4: BasicConv2d::new([192, 192], [3, 3], 2, [0, 0], device),
        }
    }

    /// `[n, c_in, h, w]` → `[n, 512 + c_in, (h − 3) / 2 + 1, (w − 3) / 2 + 1]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b3 = self
            .branch3x3_2
            .forward(self.branch3x3_1.forward(x.clone()));
        let mut b7 = self.branch7x7x3_1.forward(x.clone());
        for conv in [
            &self.branch7x7x3_2,
            &self.branch7x7x3_3,
            &self.branch7x7x3_4,
        ] {
            b7 = conv.forward(b7);
        }
        let bp = max3s2(x);
        Tensor::cat(vec![b3, b7, bp], 1)
    }

    fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        load_fields!(self, l, prefix, device; branch3x3_1, branch3x3_2, branch7x7x3_1,
            branch7x7x3_2, branch7x7x3_3, branch7x7x3_4);
    }
}

/// `FIDInceptionE_1` (`max_pool` false: average pool ignoring padded zeros) or
/// `FIDInceptionE_2` (`max_pool` true: 3x3 max pool, stride 1, padding 1).
#[derive(Module, Debug)]
pub struct InceptionE<B: Backend> {
    branch1x1: BasicConv2d<B>,
    branch3x3_1: BasicConv2d<B>,
    branch3x3_2a: BasicConv2d<B>,
    branch3x3_2b: BasicConv2d<B>,
    branch3x3dbl_1: BasicConv2d<B>,
    branch3x3dbl_2: BasicConv2d<B>,
    branch3x3dbl_3a: BasicConv2d<B>,
    branch3x3dbl_3b: BasicConv2d<B>,
    branch_pool: BasicConv2d<B>,
    max_pool: bool,
}

impl<B: Backend> InceptionE<B> {
    /// `c_in` input channels; output 2048 channels.
    pub fn new(c_in: usize, max_pool: bool, device: &B::Device) -> Self {
        let row = |a, b| BasicConv2d::new([a, b], [1, 3], 1, [0, 1], device);
        let col = |a, b| BasicConv2d::new([a, b], [3, 1], 1, [1, 0], device);
        Self {
            branch1x1: BasicConv2d::square(c_in, 320, 1, 0, device),
            branch3x3_1: BasicConv2d::square(c_in, 384, 1, 0, device),
            branch3x3_2a: row(384, 384),
            branch3x3_2b: col(384, 384),
            branch3x3dbl_1: BasicConv2d::square(c_in, 448, 1, 0, device),
            branch3x3dbl_2: BasicConv2d::square(448, 384, 3, 1, device),
            branch3x3dbl_3a: row(384, 384),
            branch3x3dbl_3b: col(384, 384),
            branch_pool: BasicConv2d::square(c_in, 192, 1, 0, device),
            max_pool,
        }
    }

    /// `[n, c_in, h, w]` → `[n, 2048, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b3 = self.branch3x3_1.forward(x.clone());
        let b3 = Tensor::cat(
            vec![
                self.branch3x3_2a.forward(b3.clone()),
                self.branch3x3_2b.forward(b3),
            ],
            1,
        );
        let bd = self
            .branch3x3dbl_2
            .forward(self.branch3x3dbl_1.forward(x.clone()));
        let bd = Tensor::cat(
            vec![
                self.branch3x3dbl_3a.forward(bd.clone()),
                self.branch3x3dbl_3b.forward(bd),
            ],
            1,
        );
        let pooled = if self.max_pool {
            max_pool2d(x, [3, 3], [1, 1], [1, 1], [1, 1], false)
        } else {
            avg3(x)
        };
        let bp = self.branch_pool.forward(pooled);
        Tensor::cat(vec![b1, b3, bd, bp], 1)
    }

    fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        load_fields!(self, l, prefix, device; branch1x1, branch3x3_1, branch3x3_2a,
            branch3x3_2b, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b,
            branch_pool);
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

#[cfg(test)]
mod tests;
