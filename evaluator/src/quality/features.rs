//! The declared feature extractor for the built-in and Fashion-MNIST data: a small CNN trained
//! once on the dataset's attribute labels (one classification head per attribute). Its pooled
//! penultimate activations are the features for Fréchet distance and KID; its predictions
//! against the attributes a prompt asked for give prompt adherence (our analogue of CLIP
//! score). Metrics computed on these features are labelled with the extractor's name — they
//! are not FID.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, Int, Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_space::rng::Rng;

use super::data::Dataset;
use super::metrics::Features;
use super::module_file::{load_module, save_module};
use crate::EvalError;

/// Width of the feature vector.
pub const FEATURE_DIM: usize = 128;

/// The CNN: four 3x3 convolutions (32, 64, 128, 128 channels; the last three with stride 2),
/// ReLU, global average pooling, and one linear head per attribute.
#[derive(Module, Debug)]
pub struct FeatureNet<B: Backend> {
    convs: Vec<Conv2d<B>>,
    pool: AdaptiveAvgPool2d,
    heads: Vec<Linear<B>>,
}

impl<B: Backend> FeatureNet<B> {
    /// A randomly initialised network with one head per entry of `classes` (class counts).
    pub fn new(classes: &[usize], device: &B::Device) -> Self {
        let widths = [3, 32, 64, 128, FEATURE_DIM];
        let convs = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                Conv2dConfig::new([w[0], w[1]], [3, 3])
                    .with_stride(if i == 0 { [1, 1] } else { [2, 2] })
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device)
            })
            .collect();
        Self {
            convs,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            heads: classes
                .iter()
                .map(|&c| LinearConfig::new(FEATURE_DIM, c).init(device))
                .collect(),
        }
    }

    /// Features `[batch, FEATURE_DIM]` of images `[batch, 3, h, w]` in [0, 1].
    pub fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        let mut x = images * 2.0 - 1.0;
        for conv in &self.convs {
            x = relu(conv.forward(x));
        }
        let [b, c, _, _] = x.dims();
        self.pool.forward(x).reshape([b, c])
    }

    /// Logits per head, each `[batch, classes_i]`.
    pub fn logits(&self, features: Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
        self.heads
            .iter()
            .map(|h| h.forward(features.clone()))
            .collect()
    }
}

/// Training settings of the extractor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FeatureTraining {
    /// Images drawn from the dataset (the first `images`).
    pub images: usize,
    /// Passes over them.
    pub epochs: usize,
    /// Batch size.
    pub batch: usize,
    /// AdamW learning rate.
    pub lr: f64,
    /// Shuffling and initialisation seed.
    pub seed: u64,
}

impl Default for FeatureTraining {
    /// 4,000 images, 3 epochs, batch 64, lr 2e-3, seed 0.
    fn default() -> Self {
        Self {
            images: 4000,
            epochs: 3,
            batch: 64,
            lr: 2e-3,
            seed: 0,
        }
    }
}

type Train = burn::backend::Autodiff<Cpu>;

/// Images `[n, 3, s, s]` and one label tensor `[n]` per attribute.
type LabelledBatch<B> = (Tensor<B, 4>, Vec<Tensor<B, 1, Int>>);

/// Stacks samples `idx` of `ds` into a `[n, 3, s, s]` tensor and one label tensor per attribute.
fn batch<B: Backend>(
    ds: &dyn Dataset,
    idx: &[usize],
    device: &B::Device,
) -> Result<LabelledBatch<B>, EvalError> {
    let s = ds.size();
    let n_attr = ds.attributes().len();
    let mut pixels = Vec::with_capacity(idx.len() * 3 * s * s);
    let mut labels = vec![Vec::with_capacity(idx.len()); n_attr];
    for &i in idx {
        let sample = ds.get(i)?;
        pixels.extend_from_slice(&sample.pixels);
        for (a, &l) in sample.labels.iter().enumerate() {
            labels[a].push(l as i64);
        }
    }
    let images = Tensor::from_data(TensorData::new(pixels, [idx.len(), 3, s, s]), device);
    let labels = labels
        .into_iter()
        .map(|l| {
            let n = l.len();
            Tensor::from_data(TensorData::new(l, [n]), device)
        })
        .collect();
    Ok((images, labels))
}

/// A trained extractor on the CPU backend.
#[derive(Debug)]
pub struct FeatureExtractor {
    net: FeatureNet<Cpu>,
    name: String,
}

impl FeatureExtractor {
    /// Trains an extractor on `ds`'s attribute labels.
    pub fn train(
        ds: &dyn Dataset,
        cfg: &FeatureTraining,
        progress: &mut dyn FnMut(usize, usize, f32),
    ) -> Result<Self, EvalError> {
        let classes: Vec<usize> = ds.attributes().iter().map(|a| a.classes.len()).collect();
        if classes.is_empty() {
            return Err(EvalError::Unsupported(format!(
                "{} has no attribute labels to train a feature extractor on",
                ds.name()
            )));
        }
        let device = Default::default();
        let mut net = super::train::init_seeded::<Train, _>(&device, cfg.seed, || {
            FeatureNet::<Train>::new(&classes, &device)
        });
        let mut opt = AdamWConfig::new().init::<Train, FeatureNet<Train>>();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let n = cfg.images.min(ds.len());
        let mut rng = Rng::seed(cfg.seed);
        let steps_per_epoch = n.div_ceil(cfg.batch.max(1));
        let total = cfg.epochs * steps_per_epoch;
        let mut step = 0;
        for _ in 0..cfg.epochs {
            let mut order: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                order.swap(i, rng.below(i + 1));
            }
            for chunk in order.chunks(cfg.batch.max(1)) {
                let (images, labels) = batch::<Train>(ds, chunk, &device)?;
                let logits = net.logits(net.features(images));
                let mut loss = loss_fn.forward(logits[0].clone(), labels[0].clone());
                for (l, y) in logits.iter().zip(&labels).skip(1) {
                    loss = loss + loss_fn.forward(l.clone(), y.clone());
                }
                let value: f32 = loss.clone().into_scalar().elem::<f32>();
                if !value.is_finite() {
                    return Err(EvalError::Measure(format!(
                        "feature extractor training diverged (loss {value}) at step {step}"
                    )));
                }
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = opt.step(cfg.lr, net, grads);
                step += 1;
                progress(step, total, value);
            }
        }
        Ok(Self {
            net: net.valid(),
            name: format!(
                "featurenet[{}; {} images x {} epochs, seed {}]",
                ds.name(),
                n,
                cfg.epochs,
                cfg.seed
            ),
        })
    }

    /// The extractor's label for metrics (`featurenet[shapes(...); ...]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Features of images given as `[3, s, s]` pixel vectors.
    pub fn features(&self, images: &[Vec<f32>], size: usize) -> Result<Features, EvalError> {
        let device = Default::default();
        let mut data = Vec::with_capacity(images.len() * FEATURE_DIM);
        for chunk in images.chunks(128) {
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            let x = Tensor::<Cpu, 4>::from_data(
                TensorData::new(flat, [chunk.len(), 3, size, size]),
                &device,
            );
            let f = self.net.features(x).into_data();
            data.extend(
                f.to_vec::<f32>()
                    .map_err(|e| EvalError::Measure(format!("{e:?}")))?,
            );
        }
        Features::new(data, FEATURE_DIM)
    }

    /// Predicted class per attribute for each image.
    pub fn predict(&self, images: &[Vec<f32>], size: usize) -> Result<Vec<Vec<usize>>, EvalError> {
        let device = Default::default();
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(128) {
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            let x = Tensor::<Cpu, 4>::from_data(
                TensorData::new(flat, [chunk.len(), 3, size, size]),
                &device,
            );
            let logits = self.net.logits(self.net.features(x));
            let per_head: Vec<Vec<i64>> = logits
                .into_iter()
                .map(|l| {
                    l.argmax(1)
                        .into_data()
                        .convert::<i64>()
                        .to_vec::<i64>()
                        .unwrap_or_default()
                })
                .collect();
            for i in 0..chunk.len() {
                out.push(per_head.iter().map(|h| h[i] as usize).collect());
            }
        }
        Ok(out)
    }

    /// Share of images whose predicted class equals the intended one, per attribute.
    pub fn adherence(
        &self,
        images: &[Vec<f32>],
        size: usize,
        intended: &[Vec<usize>],
    ) -> Result<Vec<f64>, EvalError> {
        let pred = self.predict(images, size)?;
        let heads = intended.first().map_or(0, Vec::len);
        Ok((0..heads)
            .map(|a| {
                pred.iter()
                    .zip(intended)
                    .filter(|(p, t)| p[a] == t[a])
                    .count() as f64
                    / pred.len().max(1) as f64
            })
            .collect())
    }

    /// Saves the weights (burn's named MessagePack format).
    pub fn save(&self, path: &Path) -> Result<(), EvalError> {
        save_module(&self.net, path)
    }

    /// Loads weights saved by [`FeatureExtractor::save`] for a dataset with these attributes.
    pub fn load(path: &Path, ds: &dyn Dataset, name: String) -> Result<Self, EvalError> {
        let classes: Vec<usize> = ds.attributes().iter().map(|a| a.classes.len()).collect();
        let net = load_module(FeatureNet::<Cpu>::new(&classes, &Default::default()), path)?;
        Ok(Self { net, name })
    }
}

/// Accuracy of each head on samples `range` of `ds` (held-out check of the extractor).
pub fn accuracy(
    ex: &FeatureExtractor,
    ds: &dyn Dataset,
    range: std::ops::Range<usize>,
) -> Result<Vec<f64>, EvalError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for i in range {
        let s = ds.get(i)?;
        images.push(s.pixels);
        labels.push(s.labels);
    }
    ex.adherence(&images, ds.size(), &labels)
}
