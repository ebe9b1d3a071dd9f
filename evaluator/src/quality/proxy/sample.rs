//! Sampling the fixed prompts and scoring the images (Fréchet distance, KID, adherence).

#[allow(unused_imports)]
use super::*;

impl Proxy {
    /// Samples the fixed prompts with the fixed noise (`sampling_steps` DDIM steps, trailing
    /// spacing, guidance) and decodes them: images `[3, s, s]` in [0, 1].
    pub fn sample(
        &self,
        unet: &UNet2DConditionModel<Cpu>,
        sampling_steps: usize,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        self.sample_first(unet, sampling_steps, self.prompts.len())
    }

    /// The captions of the first `n` fixed prompts (the ones [`Self::sample_first`] samples).
    pub fn prompt_texts(&self, n: usize) -> Vec<String> {
        self.prompts
            .iter()
            .take(n)
            .map(|&i| self.cache.manifest.captions[i].clone())
            .collect()
    }

    /// [`Self::sample`] for the first `n` fixed prompts only, with the same noise: the samples
    /// of two architectures compare side by side.
    pub fn sample_first(
        &self,
        unet: &UNet2DConditionModel<Cpu>,
        sampling_steps: usize,
        n: usize,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        self.sample_with(unet, sampling_steps, n, &self.cfg.scheduler_config())
    }

    /// [`Self::sample_first`] with the sampler `scheduler` (that of the recipe `unet` was
    /// trained with, e.g. a supernet's) instead of the proxy's own.
    pub fn sample_with(
        &self,
        unet: &UNet2DConditionModel<Cpu>,
        sampling_steps: usize,
        n: usize,
        scheduler: &SchedulerConfig,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        let sf = self.cache.manifest.scaling_factor as f32;
        let s = self.cfg.image_size;
        let mut out = Vec::with_capacity(n);
        for latents in self.denoise_first(unet, sampling_steps, n, scheduler)? {
            let images = self
                .vae
                .decode(latents.div_scalar(sf))
                .div_scalar(2.0)
                .add_scalar(0.5)
                .clamp(0.0, 1.0);
            let flat = finite_values(images)?;
            out.extend(flat.chunks(3 * s * s).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The final latents (the U-Net's space, before the VAE's scaling factor is undone) of the
    /// first `n` fixed prompts with their fixed noise: `sampling_steps` DDIM steps of
    /// `scheduler` (the sampler of the recipe `unet` was trained with) and the proxy's
    /// guidance. `n × [c, h, w]` values, prompt-major.
    pub fn sample_latents(
        &self,
        unet: &UNet2DConditionModel<Cpu>,
        sampling_steps: usize,
        n: usize,
        scheduler: &SchedulerConfig,
    ) -> Result<Vec<f32>, EvalError> {
        let mut out = Vec::new();
        for latents in self.denoise_first(unet, sampling_steps, n, scheduler)? {
            out.extend(finite_values(latents)?);
        }
        Ok(out)
    }

    /// Denoises the first `n` fixed prompts from their fixed noise, in chunks of
    /// `SAMPLE_CHUNK`: the latents `[chunk, c, h, w]` of each chunk.
    fn denoise_first(
        &self,
        unet: &UNet2DConditionModel<Cpu>,
        sampling_steps: usize,
        n: usize,
        scheduler: &SchedulerConfig,
    ) -> Result<Vec<Tensor<Cpu, 4>>, EvalError> {
        let prompts = &self.prompts[..n.min(self.prompts.len())];
        let device: <Cpu as BackendTypes>::Device = Default::default();
        let cache = &self.cache;
        let [c, h, w] = cache.manifest.latent;
        let [tl, td] = cache.manifest.text;
        let t = cache.text_len();
        let l = cache.latent_len();
        let noise = seeded_noise(self.cfg.data_seed, self.prompts.len() * l);
        let guidance = Guidance {
            scale: self.cfg.guidance,
            rescale: 0.0,
        };
        let cfg = guidance.scale > 1.0;
        let mut out = Vec::new();
        for (chunk_no, chunk) in prompts.chunks(SAMPLE_CHUNK).enumerate() {
            let n = chunk.len();
            let start = chunk_no * SAMPLE_CHUNK;
            let mut ctx = Vec::with_capacity(2 * n * t);
            if cfg {
                for _ in 0..n {
                    ctx.extend_from_slice(&self.uncond);
                }
            }
            for &i in chunk {
                ctx.extend_from_slice(&cache.context[i * t..][..t]);
            }
            let rows = if cfg { 2 * n } else { n };
            let context =
                Tensor::<Cpu, 3>::from_data(TensorData::new(ctx, [rows, tl, td]), &device);
            let noise = Tensor::<Cpu, 4>::from_data(
                TensorData::new(noise[start * l..(start + n) * l].to_vec(), [n, c, h, w]),
                &device,
            );
            let mut scheduler = SchedulerKind::Ddim.build::<Cpu>(scheduler)?;
            out.push(denoise(
                unet,
                &mut *scheduler,
                noise,
                context,
                &guidance,
                sampling_steps,
                &mut |_, _| {},
            )?);
        }
        Ok(out)
    }

    /// Scores generated images against the real reference: FD, KID, prompt adherence.
    pub fn score(&self, images: &[Vec<f32>]) -> Result<(f64, Kid, f64), EvalError> {
        let feats = match (&self.inception, &self.extractor) {
            (Some(inc), _) => inc.features(images, self.cfg.image_size)?,
            (None, Some(net)) => net.features(images, self.cfg.image_size)?,
            (None, None) => unreachable!("prepare requires an extractor"),
        };
        let fd = frechet_distance(&feats.stats()?, &self.reference_stats)?;
        let kid = kid(&feats, &self.reference, 10, 100, self.cfg.data_seed)?;
        let per_attr = self.adherence(images)?;
        let adherence = if per_attr.is_empty() {
            // No attribute labels: prompt adherence is not defined.
            f64::NAN
        } else {
            per_attr.iter().map(|a| a.1).sum::<f64>() / per_attr.len() as f64
        };
        Ok((fd, kid, adherence))
    }

    /// Prompt adherence of images sampled from the fixed prompts ([`Self::sample`]), per
    /// attribute: its name and the share of images the feature extractor assigns the
    /// prompted class. Empty when the score uses Inception features (no attribute heads).
    pub fn adherence(&self, images: &[Vec<f32>]) -> Result<Vec<(String, f64)>, EvalError> {
        let Some(net) = &self.extractor else {
            return Ok(Vec::new());
        };
        let intended: Vec<Vec<usize>> = self
            .prompts
            .iter()
            .take(images.len())
            .map(|&i| self.cache.manifest.labels[i].clone())
            .collect();
        let per_attr = net.adherence(images, self.cfg.image_size, &intended)?;
        Ok(self.attributes.iter().cloned().zip(per_attr).collect())
    }

    /// The fixed prompts' own latents (the posterior means of their images) decoded by the
    /// data's VAE: the best a sample can look through this VAE. Images `[3, s, s]` in [0, 1],
    /// in prompt order.
    pub fn reconstruct_prompts(&self) -> Result<Vec<Vec<f32>>, EvalError> {
        let device: <Cpu as BackendTypes>::Device = Default::default();
        let [c, h, w] = self.cache.manifest.latent;
        let l = self.cache.latent_len();
        let s = self.cfg.image_size;
        let mut out = Vec::with_capacity(self.prompts.len());
        for chunk in self.prompts.chunks(SAMPLE_CHUNK) {
            let mut flat = Vec::with_capacity(chunk.len() * l);
            for &i in chunk {
                flat.extend_from_slice(&self.cache.mean[i * l..][..l]);
            }
            let latents =
                Tensor::<Cpu, 4>::from_data(TensorData::new(flat, [chunk.len(), c, h, w]), &device);
            let images = self
                .vae
                .decode(latents)
                .div_scalar(2.0)
                .add_scalar(0.5)
                .clamp(0.0, 1.0)
                .into_data()
                .to_vec::<f32>()
                .map_err(|e| EvalError::Measure(format!("{e:?}")))?;
            out.extend(images.chunks(3 * s * s).map(<[f32]>::to_vec));
        }
        Ok(out)
    }

    /// The data items whose captions are the fixed prompts, in sampling order.
    pub fn prompt_items(&self) -> &[usize] {
        &self.prompts
    }

    /// The captions of the fixed prompts, in sampling order.
    pub fn prompt_captions(&self) -> Vec<&str> {
        self.prompts
            .iter()
            .map(|&i| self.cache.manifest.captions[i].as_str())
            .collect()
    }

    /// The label of a score computed with `sampling_steps` steps.
    pub fn metric_label(&self, sampling_steps: usize) -> String {
        format!(
            "{}[{}; {} samples; {} DDIM steps; guidance {}{}]",
            if self.inception.is_some() {
                "fid"
            } else {
                "fd"
            },
            self.extractor_name(),
            self.prompts.len(),
            sampling_steps,
            self.cfg.guidance,
            self.teacher_note()
        )
    }
}

/// A sampled tensor's values; an error when sampling produced NaN or infinity.
fn finite_values(t: Tensor<Cpu, 4>) -> Result<Vec<f32>, EvalError> {
    let flat = t
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| EvalError::Measure(format!("{e:?}")))?;
    if flat.iter().any(|v| !v.is_finite()) {
        return Err(EvalError::Diverged("sampling produced NaN/inf".into()));
    }
    Ok(flat)
}
