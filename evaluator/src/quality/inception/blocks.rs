//! The Inception-v3 blocks of pytorch-fid's FID network (torchvision's `BasicConv2d`,
//! `InceptionA`–`InceptionE`).

#[allow(unused_imports)]
use super::*;

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
    pub(super) fn square(
        c_in: usize,
        c_out: usize,
        k: usize,
        pad: usize,
        device: &B::Device,
    ) -> Self {
        Self::new([c_in, c_out], [k, k], 1, [pad, pad], device)
    }

    /// `[n, c_in, h, w]` → `[n, c_out, h', w']`.
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.bn.forward(unas_runtime::ops::conv2d(&self.conv, x)))
    }

    pub(super) fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
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
pub(super) fn avg3<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    avg_pool2d(x, [3, 3], [1, 1], [1, 1], false, false)
}

/// 3x3 max pool with stride 2, no padding.
pub(super) fn max3s2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
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

    pub(super) fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
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

    pub(super) fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
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

    pub(super) fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
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

    pub(super) fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
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

    pub(super) fn load(&mut self, l: &mut Loader, prefix: &str, device: &B::Device) {
        load_fields!(self, l, prefix, device; branch1x1, branch3x3_1, branch3x3_2a,
            branch3x3_2b, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b,
            branch_pool);
    }
}
