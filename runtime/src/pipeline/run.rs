//! `generate_on`: one text-to-image request on a [`Device`], with plain (backend-free) outputs
//! for the CLI.

use std::path::PathBuf;
use std::time::Instant;

use burn::tensor::backend::Backend;

use crate::device::{Cpu, Device};
use crate::error::RuntimeError;
use crate::pipeline::model_dir::ModelDir;
use crate::pipeline::png::RgbImage;
use crate::pipeline::stable_diffusion::{read_noise, to_rgb8, GenerateParams, StableDiffusion};
use crate::scheduler::SchedulerKind;

/// A text-to-image request.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    /// The diffusers model folder.
    pub model: PathBuf,
    /// A U-Net folder (`config.json` + weights) replacing the model's own.
    pub unet: Option<PathBuf>,
    /// The scheduler; `None` = the folder's when unas implements it, else DPM-Solver++.
    pub scheduler: Option<SchedulerKind>,
    /// Prompt, sizes, steps, guidance, seed.
    pub params: GenerateParams,
    /// Initial latents (safetensors) instead of seeded noise.
    pub noise: Option<PathBuf>,
}

/// What a request produced.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOutput {
    /// Final latents, row-major `latent_shape`.
    pub latents: Vec<f32>,
    /// `[num_images, c, h, w]`.
    pub latent_shape: [usize; 4],
    /// The decoded images.
    pub images: Vec<RgbImage>,
    /// The scheduler used.
    pub scheduler: SchedulerKind,
    /// The folder's scheduler class when unas does not implement it (DPM-Solver++ was used).
    pub scheduler_fallback_from: Option<String>,
    /// Tokens cut from the prompt and the negative prompt.
    pub truncated_tokens: (usize, usize),
    /// Seconds spent loading the models.
    pub load_s: f64,
    /// Seconds per denoising step (U-Net passes + scheduler).
    pub step_s: Vec<f64>,
    /// Seconds spent decoding the latents.
    pub decode_s: f64,
}

/// Loads the model and runs the request on `device`; `progress(step, total)` after each step.
pub fn generate_on(
    device: Device,
    req: &GenerateRequest,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerateOutput, RuntimeError> {
    device.check()?;
    match device {
        Device::Cpu => generate_with::<Cpu>(req, &Default::default(), progress),
        #[cfg(feature = "cuda")]
        Device::Cuda(i) => generate_with::<crate::device::Cuda>(
            req,
            &burn::backend::cuda::CudaDevice::new(i),
            progress,
        ),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
    }
}

/// [`generate_on`] for a backend.
pub fn generate_with<B: Backend>(
    req: &GenerateRequest,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<GenerateOutput, RuntimeError> {
    let start = Instant::now();
    let dir = ModelDir::open(&req.model, req.unet.as_deref())?;
    let noise = req
        .noise
        .as_ref()
        .map(|p| read_noise::<B>(p, device))
        .transpose()?;
    let sd = StableDiffusion::<B>::load(&dir, device)?;
    let (kind, fallback) = match req.scheduler {
        Some(k) => (k, None),
        None => match sd.default_scheduler_kind() {
            Some(k) => (k, None),
            None => (
                SchedulerKind::DpmSolver,
                Some(
                    sd.scheduler_config
                        .class_name
                        .clone()
                        .unwrap_or_else(|| "(no _class_name)".into()),
                ),
            ),
        },
    };
    let mut scheduler = kind.build::<B>(&sd.scheduler_config)?;
    sd.latent_shape(&req.params)?;
    let load_s = start.elapsed().as_secs_f64();

    let mut step_s = Vec::new();
    let mut last = Instant::now();
    let generated = sd.generate(&req.params, scheduler.as_mut(), noise, &mut |i, n| {
        step_s.push(last.elapsed().as_secs_f64());
        last = Instant::now();
        progress(i, n);
    })?;
    // `generate` decodes after the last step: the time since the last progress call.
    let images = to_rgb8(generated.images);
    let decode_s = last.elapsed().as_secs_f64();
    let latent_shape = generated.latents.dims();
    let latents = generated
        .latents
        .into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| RuntimeError::Input(format!("{e:?}")))?;
    Ok(GenerateOutput {
        latents,
        latent_shape,
        images,
        scheduler: kind,
        scheduler_fallback_from: fallback,
        truncated_tokens: generated.truncated_tokens,
        load_s,
        step_s,
        decode_s,
    })
}
