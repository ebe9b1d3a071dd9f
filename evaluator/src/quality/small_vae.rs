//! The proxy's VAE: the runtime's `AutoencoderKL` at a small width (16 and 32 channels, one
//! downsampling, so 32 px images become 4x16x16 latents), trained once per dataset on the CPU
//! (reconstruction MSE plus a small KL term, AdamW) and cached. Candidates train on its
//! latents and are decoded with it, so the CPU path uses the same modules as real runs.

use std::path::Path;

use burn::module::AutodiffModule;
use burn::optim::{AdamWConfig, GradientsParams, Optimizer};
use burn::tensor::{ElementConversion, Tensor, TensorData};
use unas_runtime::device::Cpu;
use unas_runtime::vae::{AutoencoderKL, AutoencoderKLConfig};
use unas_space::rng::Rng;

use super::data::Dataset;
use super::module_file::{load_module, save_module};
use super::train::{init_seeded, normal};
use crate::EvalError;

type Train = burn::backend::Autodiff<Cpu>;

/// Training settings of the small VAE.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VaeTraining {
    /// AdamW steps (default 300).
    pub steps: usize,
    /// Images per step (default 16).
    pub batch: usize,
    /// Learning rate (default 3e-3).
    pub lr: f64,
    /// Weight of the KL term against the per-pixel MSE (default 1e-4).
    pub kl_weight: f64,
    /// Initialisation and batch seed (default 0).
    pub seed: u64,
}

impl Default for VaeTraining {
    fn default() -> Self {
        Self {
            steps: 300,
            batch: 16,
            lr: 3e-3,
            kl_weight: 1e-4,
            seed: 0,
        }
    }
}

/// The small VAE's configuration: block widths 16, 32; one ResNet per encoder block; 8 norm
/// groups; mid-block attention; 4 latent channels; downscale 2.
pub fn small_vae_config() -> AutoencoderKLConfig {
    AutoencoderKLConfig::new()
        .with_block_out_channels(vec![16, 32])
        .with_layers_per_block(1)
        .with_norm_num_groups(8)
}

/// Images `idx` of `ds` as a `[n, 3, s, s]` tensor in [−1, 1].
pub fn image_batch<B: burn::tensor::backend::Backend>(
    ds: &dyn Dataset,
    idx: &[usize],
    device: &B::Device,
) -> Result<Tensor<B, 4>, EvalError> {
    let s = ds.size();
    let mut pixels = Vec::with_capacity(idx.len() * 3 * s * s);
    for &i in idx {
        pixels.extend(ds.get(i)?.pixels.iter().map(|p| p * 2.0 - 1.0));
    }
    Ok(Tensor::from_data(
        TensorData::new(pixels, [idx.len(), 3, s, s]),
        device,
    ))
}

/// Trains the small VAE on the first `images` samples of `ds`. Returns the model and the mean
/// reconstruction MSE (in [−1, 1] units) over the last 10 % of the steps.
pub fn train_vae(
    ds: &dyn Dataset,
    images: usize,
    cfg: &VaeTraining,
    progress: &mut dyn FnMut(usize, usize, f32),
) -> Result<(AutoencoderKL<Cpu>, f64), EvalError> {
    let device = Default::default();
    let config = small_vae_config();
    let mut vae = init_seeded::<Train, _>(&device, cfg.seed, || config.init(&device));
    let mut opt = AdamWConfig::new().init::<Train, AutoencoderKL<Train>>();
    let mut rng = Rng::seed(cfg.seed ^ 0x7661_6500);
    let n = images.min(ds.len());
    let mut recon_tail = Vec::new();
    for step in 0..cfg.steps {
        let idx: Vec<usize> = (0..cfg.batch).map(|_| rng.below(n)).collect();
        let x = image_batch::<Train>(ds, &idx, &device)?;
        let (mean, logvar) = vae.encode(x.clone());
        let eps = Tensor::<Train, 4>::from_data(
            TensorData::new(normal(&mut rng, mean.shape().num_elements()), mean.dims()),
            &device,
        );
        let z = mean.clone() + (logvar.clone() * 0.5).exp() * eps;
        let recon = vae.decode(z);
        let mse = (recon - x).powi_scalar(2).mean();
        let kl = (mean.powi_scalar(2) + logvar.clone().exp() - logvar - 1.0).mean() * 0.5;
        let loss = mse.clone() + kl * cfg.kl_weight;
        let value: f32 = loss.clone().into_scalar().elem::<f32>();
        if !value.is_finite() {
            return Err(EvalError::Diverged(format!(
                "small VAE: loss {value} at step {step}"
            )));
        }
        if step * 10 >= cfg.steps * 9 {
            recon_tail.push(mse.into_scalar().elem::<f32>() as f64);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &vae);
        vae = opt.step(cfg.lr, vae, grads);
        progress(step + 1, cfg.steps, value);
    }
    let recon = recon_tail.iter().sum::<f64>() / recon_tail.len().max(1) as f64;
    Ok((vae.valid(), recon))
}

/// Saves the VAE's weights (burn's named MessagePack format).
pub fn save_vae(vae: &AutoencoderKL<Cpu>, path: &Path) -> Result<(), EvalError> {
    save_module(vae, path)
}

/// Loads weights written by [`save_vae`].
pub fn load_vae(path: &Path) -> Result<AutoencoderKL<Cpu>, EvalError> {
    load_module(small_vae_config().init::<Cpu>(&Default::default()), path)
}
