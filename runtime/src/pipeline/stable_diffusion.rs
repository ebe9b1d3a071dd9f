//! `StableDiffusion`: the text-to-image pipeline of diffusers' `StableDiffusionPipeline`
//! (classifier-free guidance with guidance rescale) over a model folder, with any unas U-Net.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use unas_space::UNetArch;

use crate::error::{read_json, RuntimeError};
use crate::pipeline::model_dir::ModelDir;
use crate::pipeline::png::RgbImage;
use crate::scheduler::{Scheduler, SchedulerConfig, SchedulerKind};
use crate::text::{ClipTextConfig, ClipTextModel, ClipTokenizer};
use crate::unet::UNet2DConditionModel;
use crate::vae::{AutoencoderKL, AutoencoderKLConfig};
use crate::weights::Weights;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateParams {
    /// The prompt.
    pub prompt: String,
    /// The negative prompt (empty = unconditional). Default: "".
    pub negative_prompt: String,
    /// Classifier-free guidance scale s (no guidance when ≤ 1). Default: 7.5.
    pub guidance_scale: f64,
    /// Guidance rescale φ (0 = off). Default: 0.
    pub guidance_rescale: f64,
    /// Image width in pixels (a multiple of the VAE and U-Net downsampling). Default: 512.
    pub width: usize,
    /// Image height in pixels. Default: 512.
    pub height: usize,
    /// Denoising steps. Default: 30.
    pub steps: usize,
    /// Images generated in one batch. Default: 1.
    pub num_images: usize,
    /// Seed of the initial noise (same seed → same noise on every backend). Default: 0.
    pub seed: u64,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            guidance_scale: 7.5,
            guidance_rescale: 0.0,
            width: 512,
            height: 512,
            steps: 30,
            num_images: 1,
            seed: 0,
        }
    }
}

/// Result of [`StableDiffusion::generate`].
#[derive(Debug)]
pub struct Generated<B: Backend> {
    /// Final latents `[num_images, latent_channels, h, w]` (before VAE scaling, as diffusers'
    /// `output_type="latent"` returns them).
    pub latents: Tensor<B, 4>,
    /// Decoded images in [0, 1], `[num_images, 3, height, width]`.
    pub images: Tensor<B, 4>,
    /// Tokens cut from the prompt and the negative prompt to fit the tokenizer's length.
    pub truncated_tokens: (usize, usize),
}

/// Tokenizer, text encoder, U-Net, VAE and scheduler configuration of one model.
#[derive(Debug)]
pub struct StableDiffusion<B: Backend> {
    /// CLIP tokenizer.
    pub tokenizer: ClipTokenizer,
    /// CLIP text encoder.
    pub text_encoder: ClipTextModel<B>,
    /// The U-Net.
    pub unet: UNet2DConditionModel<B>,
    /// Its architecture.
    pub unet_arch: UNetArch,
    /// The VAE.
    pub vae: AutoencoderKL<B>,
    /// The folder's scheduler configuration.
    pub scheduler_config: SchedulerConfig,
    vae_downscale: usize,
    device: B::Device,
}

/// The U-Net architecture a `config.json` describes (diffusers, DeciDiffusion or unas form).
pub fn read_unet_arch(path: &Path) -> Result<UNetArch, RuntimeError> {
    unas_space::diffusers::import_config(&read_json(path)?).map_err(|e| RuntimeError::BadFile {
        file: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Standard-normal noise from a seed (ChaCha8 + Box–Muller in f64): identical on every
/// platform and backend.
pub fn seeded_noise(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = uniform().max(f64::MIN_POSITIVE);
        let u2 = uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let a = 2.0 * std::f64::consts::PI * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

impl<B: Backend> StableDiffusion<B> {
    /// Loads every component of a model folder (see [`ModelDir::open`]). Errors name the file
    /// and, for weights, the tensor.
    pub fn load(dir: &ModelDir, device: &B::Device) -> Result<Self, RuntimeError> {
        let tokenizer = ClipTokenizer::from_dir(&dir.tokenizer)?;
        let scheduler_config = SchedulerConfig::from_file(&dir.scheduler_config)?;
        let text_config = ClipTextConfig::from_file(&dir.text_encoder_config)?;
        if (tokenizer.vocab_size() > text_config.vocab_size)
            || tokenizer.max_length() > text_config.max_position_embeddings
        {
            return Err(RuntimeError::BadFile {
                file: dir.text_encoder_config.clone(),
                message: format!(
                    "the text encoder (vocab {}, {} positions) does not fit the tokenizer \
                     (vocab {}, length {})",
                    text_config.vocab_size,
                    text_config.max_position_embeddings,
                    tokenizer.vocab_size(),
                    tokenizer.max_length()
                ),
            });
        }
        let text_encoder = ClipTextModel::load(&text_config, &dir.text_encoder_weights, device)?;
        let unet_arch = read_unet_arch(&dir.unet_config)?;
        if unet_arch.stem.cross_attention_dim != text_config.hidden_size {
            return Err(RuntimeError::BadFile {
                file: dir.unet_config.clone(),
                message: format!(
                    "cross_attention_dim {} differs from the text encoder's width {}",
                    unet_arch.stem.cross_attention_dim, text_config.hidden_size
                ),
            });
        }
        let unet = UNet2DConditionModel::load(&unet_arch, &dir.unet_weights, device)?;
        let vae_config = AutoencoderKLConfig::from_file(&dir.vae_config)?;
        if vae_config.latent_channels != unet_arch.stem.in_channels {
            return Err(RuntimeError::BadFile {
                file: dir.unet_config.clone(),
                message: format!(
                    "the U-Net takes {} channels, the VAE has {} latent channels",
                    unet_arch.stem.in_channels, vae_config.latent_channels
                ),
            });
        }
        let vae = AutoencoderKL::load(&vae_config, &dir.vae_weights, device)?;
        Ok(Self {
            tokenizer,
            text_encoder,
            unet,
            unet_arch,
            vae,
            scheduler_config,
            vae_downscale: vae_config.downscale(),
            device: device.clone(),
        })
    }

    /// The scheduler the folder asks for, if unas implements it.
    pub fn default_scheduler_kind(&self) -> Option<SchedulerKind> {
        self.scheduler_config
            .class_name
            .as_deref()
            .and_then(SchedulerKind::from_class_name)
    }

    /// Latent shape `[num_images, channels, h, w]` for the parameters, or an error when the
    /// size does not divide.
    pub fn latent_shape(&self, p: &GenerateParams) -> Result<[usize; 4], RuntimeError> {
        let f = self.vae_downscale;
        if p.width == 0
            || p.height == 0
            || !p.width.is_multiple_of(f)
            || !p.height.is_multiple_of(f)
        {
            return Err(RuntimeError::Input(format!(
                "width and height must be positive multiples of {f} (the VAE's downsampling)"
            )));
        }
        if p.num_images == 0 {
            return Err(RuntimeError::Input("num_images must be at least 1".into()));
        }
        Ok([
            p.num_images,
            self.unet_arch.stem.in_channels,
            p.height / f,
            p.width / f,
        ])
    }

    /// Text embeddings `[n, 77, hidden]` of one prompt repeated `n` times, and the number of
    /// tokens truncated.
    pub fn encode_prompt(&self, prompt: &str, n: usize) -> (Tensor<B, 3>, usize) {
        let enc = self.tokenizer.encode_padded(prompt);
        let len = enc.ids.len();
        let ids: Vec<i64> = enc.ids.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, len]), &self.device);
        let h = self.text_encoder.forward(ids);
        let [_, l, d] = h.dims();
        (h.expand([n, l, d]), enc.truncated_tokens)
    }

    /// Runs the denoising loop and decodes the result. `noise` (`[num_images, c, h, w]`)
    /// replaces the seeded noise; `progress(step, total)` is called after every step.
    pub fn generate(
        &self,
        p: &GenerateParams,
        scheduler: &mut dyn Scheduler<B>,
        noise: Option<Tensor<B, 4>>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Generated<B>, RuntimeError> {
        let shape = self.latent_shape(p)?;
        let noise = match noise {
            Some(t) => {
                if t.dims() != shape {
                    return Err(RuntimeError::Input(format!(
                        "the noise has shape {:?}; {}x{} px and {} image(s) need {shape:?}",
                        t.dims(),
                        p.width,
                        p.height,
                        p.num_images
                    )));
                }
                t
            }
            None => {
                let n = shape.iter().product();
                Tensor::from_data(
                    TensorData::new(seeded_noise(p.seed, n), shape),
                    &self.device,
                )
            }
        };
        let n = p.num_images;
        let cfg = p.guidance_scale > 1.0;
        let (cond, trunc_p) = self.encode_prompt(&p.prompt, n);
        let (context, trunc_n) = if cfg {
            let (uncond, t) = self.encode_prompt(&p.negative_prompt, n);
            (Tensor::cat(vec![uncond, cond], 0), t)
        } else {
            (cond, 0)
        };
        let batch = if cfg { 2 * n } else { n };
        let [_, c, h, w] = shape;
        self.unet
            .check_inputs([batch, c, h, w], [1], context.dims())?;

        let latents = denoise(
            &self.unet,
            scheduler,
            noise,
            context,
            &Guidance {
                scale: if cfg { p.guidance_scale } else { 1.0 },
                rescale: p.guidance_rescale,
            },
            p.steps,
            progress,
        )?;
        let images = self.decode(latents.clone());
        Ok(Generated {
            latents,
            images,
            truncated_tokens: (trunc_p, trunc_n),
        })
    }

    /// Latents → images in [0, 1] (`z / scaling_factor + shift`, VAE decoder,
    /// `(x / 2 + 0.5).clamp(0, 1)`).
    pub fn decode(&self, latents: Tensor<B, 4>) -> Tensor<B, 4> {
        let z = latents
            .div_scalar(self.vae.scaling_factor() as f32)
            .add_scalar(self.vae.shift_factor() as f32);
        self.vae
            .decode(z)
            .div_scalar(2.0)
            .add_scalar(0.5)
            .clamp(0.0, 1.0)
    }
}

/// Classifier-free guidance settings of [`denoise`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guidance {
    /// Guidance scale; `> 1` runs the unconditional and the conditional batch together.
    pub scale: f64,
    /// `guidance_rescale` φ (0 = off).
    pub rescale: f64,
}

/// The denoising loop shared by the pipeline and the proxy-quality sampler: sets `steps` on
/// the scheduler, then for each timestep runs the U-Net (on `[uncond; cond]` when
/// `guidance.scale > 1`), combines the two halves and steps the scheduler.
/// - `noise`: `[n, c, h, w]` standard normal latents (scaled by `init_noise_sigma` here)
/// - `context`: `[2n, len, dim]` (unconditional first) with guidance, else `[n, len, dim]`
/// - returns the final latents `[n, c, h, w]` (still scaled by the VAE's factor)
#[allow(clippy::too_many_arguments)]
pub fn denoise<B: Backend>(
    unet: &UNet2DConditionModel<B>,
    scheduler: &mut dyn Scheduler<B>,
    noise: Tensor<B, 4>,
    context: Tensor<B, 3>,
    guidance: &Guidance,
    steps: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Tensor<B, 4>, RuntimeError> {
    let [n, c, h, w] = noise.dims();
    let device = noise.device();
    let cfg = guidance.scale > 1.0;
    scheduler.set_timesteps(steps)?;
    let timesteps = scheduler.timesteps().to_vec();
    let mut latents = noise.mul_scalar(scheduler.init_noise_sigma() as f32);
    for (i, &t) in timesteps.iter().enumerate() {
        let input = if cfg {
            Tensor::cat(vec![latents.clone(), latents.clone()], 0)
        } else {
            latents.clone()
        };
        let input = scheduler.scale_model_input(input, i);
        let ts = Tensor::<B, 1>::from_floats([t as f32], &device);
        let out = unet.forward(input, ts, context.clone());
        let pred = if cfg {
            let uncond = out.clone().slice([0..n, 0..c, 0..h, 0..w]);
            let text = out.slice([n..2 * n, 0..c, 0..h, 0..w]);
            let guided = uncond.clone() + (text.clone() - uncond).mul_scalar(guidance.scale as f32);
            if guidance.rescale > 0.0 {
                rescale_noise_cfg(guided, text, guidance.rescale)
            } else {
                guided
            }
        } else {
            out
        };
        latents = scheduler.step(pred, i, latents);
        progress(i + 1, timesteps.len());
    }
    Ok(latents)
}

/// Guidance rescale (Lin et al. 2023, §3.4; diffusers' `rescale_noise_cfg`): per image,
/// `x = cfg · std(text) / std(cfg)`, then `φ·x + (1−φ)·cfg` (unbiased std over c, h, w).
pub fn rescale_noise_cfg<B: Backend>(
    cfg: Tensor<B, 4>,
    text: Tensor<B, 4>,
    phi: f64,
) -> Tensor<B, 4> {
    let [n, c, h, w] = cfg.dims();
    let std = |t: Tensor<B, 4>| {
        t.reshape([n, c * h * w])
            .var(1)
            .sqrt()
            .reshape([n, 1, 1, 1])
    };
    let ratio = std(text) / std(cfg.clone());
    let rescaled = cfg.clone() * ratio;
    rescaled.mul_scalar(phi as f32) + cfg.mul_scalar((1.0 - phi) as f32)
}

/// Images in [0, 1] `[n, 3, h, w]` → 8-bit RGB (`round(x · 255)`, as diffusers).
pub fn to_rgb8<B: Backend>(images: Tensor<B, 4>) -> Vec<RgbImage> {
    let [n, c, h, w] = images.dims();
    let data: Vec<f32> = images
        .permute([0, 2, 3, 1])
        .into_data()
        .convert::<f32>()
        .to_vec()
        .expect("float data");
    (0..n)
        .map(|i| {
            let img = &data[i * h * w * c..(i + 1) * h * w * c];
            let pixels = img
                .chunks(c)
                .flat_map(|px| {
                    let g = |k: usize| (px[k.min(c - 1)] * 255.0).round_ties_even() as u8;
                    [g(0), g(1), g(2)]
                })
                .collect();
            RgbImage {
                width: w,
                height: h,
                pixels,
            }
        })
        .collect()
}

/// Reads initial latents from a safetensors file: the tensor `latents` or `noise`, or the
/// file's only tensor.
pub fn read_noise<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<Tensor<B, 4>, RuntimeError> {
    let mut w = Weights::open(path)?;
    let shapes = w.shapes();
    let key = ["latents", "noise"]
        .iter()
        .map(|k| k.to_string())
        .find(|k| shapes.contains_key(k))
        .or_else(|| {
            (shapes.len() == 1)
                .then(|| shapes.keys().next().cloned())
                .flatten()
        })
        .ok_or_else(|| RuntimeError::BadFile {
            file: path.to_path_buf(),
            message: "expected a tensor named `latents` or `noise` (or exactly one tensor)".into(),
        })?;
    let dims: [usize; 4] = shapes[&key]
        .clone()
        .try_into()
        .map_err(|_| RuntimeError::BadFile {
            file: path.to_path_buf(),
            message: format!(
                "tensor `{key}` has shape {:?}; expected [n, c, h, w]",
                shapes[&key]
            ),
        })?;
    w.tensor::<B, 4>(&key, dims, device)
}

/// Writes latents (row-major `shape`) to a safetensors file under the key `latents` (F32).
pub fn save_latents(path: &Path, values: &[f32], shape: [usize; 4]) -> Result<(), RuntimeError> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
            .map_err(|e| RuntimeError::Input(e.to_string()))?;
    safetensors::serialize_to_file([("latents", view)], None, path).map_err(|e| RuntimeError::Io {
        file: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = crate::device::Cpu;

    #[test]
    fn seeded_noise_is_standard_normal_and_reproducible() {
        let a = seeded_noise(7, 20001);
        assert_eq!(a, seeded_noise(7, 20001));
        assert_ne!(a[..10], seeded_noise(8, 10)[..]);
        let mean = a.iter().map(|&x| x as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
    }

    #[test]
    fn guidance_rescale_matches_formula() {
        let d = Default::default();
        let cfg = Tensor::<B, 4>::from_floats([[[[1.0, 3.0], [5.0, 7.0]]]], &d);
        let text = Tensor::<B, 4>::from_floats([[[[0.0, 1.0], [2.0, 3.0]]]], &d);
        // std(text) / std(cfg) = 1/2 → φ = 1 halves cfg, φ = 0.5 gives 0.75·cfg.
        let out: Vec<f32> = rescale_noise_cfg(cfg, text, 0.5)
            .to_data()
            .to_vec()
            .unwrap();
        assert_eq!(out, vec![0.75, 2.25, 3.75, 5.25]);
    }
}
