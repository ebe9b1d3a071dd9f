//! What `unas train` writes besides the U-Net: the loss curve, samples, prompt adherence and
//! `train.json`.

#[allow(unused_imports)]
use super::*;

/// Mean loss of the last 5 % of the steps (at least one).
pub(super) fn tail_mean(losses: &[f32]) -> f64 {
    let n = (losses.len() / 20).max(1).min(losses.len().max(1));
    let tail = &losses[losses.len().saturating_sub(n)..];
    tail.iter().map(|&l| l as f64).sum::<f64>() / tail.len().max(1) as f64
}

pub(super) fn write_loss_files(out: &Path, losses: &[f32], arch: &UNetArch) -> CmdResult {
    let mut csv = String::from("step,loss\n");
    for (i, l) in losses.iter().enumerate() {
        csv.push_str(&format!("{},{l}\n", i + 1));
    }
    let file = out.join("loss.csv");
    std::fs::write(&file, csv)
        .map_err(|e| CliError::failure(format!("{}: {e}", file.display())))?;
    unas_reports::training::write_loss_curve(
        out,
        losses,
        &format!("unas train {}: loss per step", arch.hash_id()),
    )
    .map_err(CliError::failure)?;
    Ok(())
}

/// Samples the fixed prompts, measures prompt adherence per attribute, and writes the first
/// 64 samples as `samples.png` beside the real images of the same prompts (`real.png`).
pub(super) fn sample_and_measure(
    proxy: &Proxy,
    unet: &UNet2DConditionModel<Cpu>,
    cfg: &unas_evaluator::quality::proxy::ProxyConfig,
    out: &Path,
    bar: &ProgressBar,
) -> Result<serde_json::Value, CliError> {
    let t0 = Instant::now();
    let images = proxy
        .sample(unet, cfg.sampling_steps)
        .map_err(|e| CliError::failure(format!("sampling: {e}")))?;
    let per_attr = proxy
        .adherence(&images)
        .map_err(|e| CliError::failure(format!("prompt adherence: {e}")))?;
    let line: Vec<String> = per_attr
        .iter()
        .map(|(n, v)| format!("{n} {v:.3}"))
        .collect();
    say(
        bar,
        format!(
            "prompt adherence on {} samples ({} DDIM steps, {:.0} s): {}",
            images.len(),
            cfg.sampling_steps,
            t0.elapsed().as_secs_f64(),
            if line.is_empty() {
                "no attribute labels".to_string()
            } else {
                line.join(", ")
            }
        ),
    );
    let shown = images.len().min(64);
    let grid = unas_reports::training::image_grid_png(&images[..shown], cfg.image_size, 8, 2)
        .map_err(CliError::failure)?;
    write_file(&out.join("samples.png"), &grid)?;
    let ds = open_dataset(&cfg.data, cfg.image_size, cfg.data_seed)
        .map_err(|e| CliError::failure(format!("reading the data: {e}")))?;
    let real: Vec<Vec<f32>> = proxy
        .prompt_items()
        .iter()
        .map(|&i| ds.get(i).map(|s| s.pixels))
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::failure(format!("reading the data: {e}")))?;
    let grid = unas_reports::training::image_grid_png(&real[..shown], cfg.image_size, 8, 2)
        .map_err(CliError::failure)?;
    write_file(&out.join("real.png"), &grid)?;
    // The extractor on the real images of the same prompts: the ceiling of the measure.
    let real_per_attr = proxy
        .adherence(&real)
        .map_err(|e| CliError::failure(format!("prompt adherence: {e}")))?;
    // Their latents decoded by the data's VAE: what the VAE lets a sample show.
    let vae = proxy
        .reconstruct_prompts()
        .map_err(|e| CliError::failure(format!("decoding the prompts' latents: {e}")))?;
    let vae_per_attr = proxy
        .adherence(&vae)
        .map_err(|e| CliError::failure(format!("prompt adherence: {e}")))?;
    let grid = unas_reports::training::image_grid_png(&vae[..shown], cfg.image_size, 8, 2)
        .map_err(CliError::failure)?;
    write_file(&out.join("vae.png"), &grid)?;
    let captions: Vec<&str> = proxy.prompt_captions().into_iter().take(shown).collect();
    write_file(
        &out.join("samples.txt"),
        (captions.join("\n") + "\n").as_bytes(),
    )?;
    Ok(serde_json::json!({
        "samples": images.len(),
        "sampling_steps": cfg.sampling_steps,
        "guidance": cfg.guidance,
        "per_attribute": per_attr.iter().map(|(n, v)| (n.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "per_attribute_real": real_per_attr.iter().map(|(n, v)| (n.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "per_attribute_vae": vae_per_attr.iter().map(|(n, v)| (n.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "extractor": proxy.extractor_name(),
    }))
}

pub(super) fn write_file(path: &Path, bytes: &[u8]) -> CmdResult {
    std::fs::write(path, bytes).map_err(|e| CliError::failure(format!("{}: {e}", path.display())))
}

/// One training run's inputs.
pub(super) struct Job<'a> {
    pub(super) arch: &'a UNetArch,
    pub(super) data: &'a TrainData<'a>,
    pub(super) data_label: &'a str,
    pub(super) settings: &'a ModelTrainSettings,
    pub(super) init: Option<(&'a RoleWeights, &'a str)>,
    pub(super) teacher: Option<&'a Source>,
    pub(super) dir: &'a Path,
}

impl Job<'_> {
    /// Trains on `device` and returns the weights on the host.
    pub(super) fn run(
        &self,
        device: Device,
        progress: &mut dyn FnMut(StepInfo),
    ) -> Result<TrainedModel<Cpu>, CliError> {
        match device {
            Device::Cpu => {
                self.run_on::<burn::backend::Autodiff<Cpu>>(&Default::default(), progress)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(i) => {
                let t = self.run_on::<burn::backend::Autodiff<unas_runtime::device::Cuda>>(
                    &burn::backend::cuda::CudaDevice::new(i),
                    progress,
                )?;
                Ok(t)
            }
            #[cfg(not(feature = "cuda"))]
            Device::Cuda(_) => unreachable!("Device::check rejects CUDA without the feature"),
        }
    }

    pub(super) fn run_on<B: burn::tensor::backend::AutodiffBackend>(
        &self,
        device: &B::Device,
        progress: &mut dyn FnMut(StepInfo),
    ) -> Result<TrainedModel<Cpu>, CliError> {
        let classify = |e: EvalError| match e {
            // A corrupt or foreign checkpoint is bad input.
            EvalError::File { .. } => CliError::input(e),
            e => CliError::failure(format!("training: {e}")),
        };
        // The teacher on the training device (its weights by role: every tensor maps).
        let t_unet = match self.teacher {
            None => None,
            Some(t) => {
                let fresh = UNet2DConditionModel::<B::InnerBackend>::init(&t.arch, device)
                    .map_err(CliError::failure)?;
                Some(
                    t.weights
                        .inherit(&t.arch, fresh)
                        .map_err(CliError::failure)?
                        .0,
                )
            }
        };
        let teacher = match (self.teacher, &t_unet) {
            (Some(t), Some(u)) => Some(Teacher {
                arch: &t.arch,
                unet: u,
                label: &t.label,
            }),
            _ => None,
        };
        let trained = train_model::<B>(
            self.arch,
            self.data,
            self.data_label,
            self.settings,
            self.init,
            teacher.as_ref(),
            self.dir,
            device,
            None,
            progress,
        )
        .map_err(classify)?;
        // Weights to the host, by role (every tensor maps onto the same architecture).
        let w = RoleWeights::from_unet(self.arch, &trained.unet).map_err(CliError::failure)?;
        let host = UNet2DConditionModel::<Cpu>::init(self.arch, &Default::default())
            .map_err(CliError::failure)?;
        let (unet, _) = w.inherit(self.arch, host).map_err(CliError::failure)?;
        Ok(TrainedModel {
            unet,
            losses: trained.losses,
            steps_run: trained.steps_run,
            inherited: trained.inherited,
            feature_sections: trained.feature_sections,
        })
    }
}
