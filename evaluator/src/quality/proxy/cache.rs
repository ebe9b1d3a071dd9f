//! The cache folder of prepared data: its key (everything that changes its content) and
//! how it is built.

#[allow(unused_imports)]
use super::*;

/// What identifies a cache folder: everything that changes its content.
#[derive(Serialize)]
pub(super) struct CacheKey<'a> {
    pub(super) version: u32,
    pub(super) dataset: String,
    pub(super) images: usize,
    pub(super) image_size: usize,
    pub(super) text: [usize; 2],
    pub(super) seed: u64,
    pub(super) vae: &'a VaeTraining,
    pub(super) features: FeatureTrainingKey,
    /// The encoding pipeline (`quality.pipeline`), absent from keys without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) pipeline: Option<serde_json::Value>,
}

#[derive(Serialize)]
pub(super) struct FeatureTrainingKey {
    pub(super) images: usize,
    pub(super) epochs: usize,
    pub(super) batch: usize,
    pub(super) lr: f64,
    pub(super) seed: u64,
}

/// Trains the VAE and the extractor, encodes the dataset, and writes the cache folder `dir`
/// atomically (built beside it, then renamed).
#[allow(clippy::too_many_arguments)]
pub(super) fn build_cache(
    ds: &dyn Dataset,
    images: usize,
    dim: usize,
    vae_training: &VaeTraining,
    encoders: Option<&PipelineEncoders>,
    feature_training: &FeatureTraining,
    key_json: &str,
    dir: &std::path::Path,
    progress: &mut dyn FnMut(&str),
) -> Result<(), EvalError> {
    let parent = dir.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("proxy"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    let result = (|| {
        let t0 = Instant::now();
        let trained;
        let (vae, recon) = match encoders {
            Some(enc) => {
                progress(&format!(
                    "encoding {images} images with the VAE of {}",
                    enc.dir.display()
                ));
                (&enc.vae, None)
            }
            None => {
                progress(&format!(
                    "training the small VAE on {} ({} steps)",
                    ds.name(),
                    vae_training.steps
                ));
                let (vae, recon) = train_vae(ds, images, vae_training, &mut |_, _, _| {})?;
                save_vae(&vae, &tmp.join("vae.mpk"))?;
                progress(&format!(
                    "small VAE: reconstruction MSE {recon:.4} in {:.0} s; encoding {images} images",
                    t0.elapsed().as_secs_f64()
                ));
                trained = vae;
                (&trained, Some(recon))
            }
        };
        let vae_seconds = t0.elapsed().as_secs_f64();
        let device = Default::default();
        let mut mean = Vec::new();
        let mut logvar = Vec::new();
        let mut captions = Vec::with_capacity(images);
        let mut labels = Vec::with_capacity(images);
        let idx: Vec<usize> = (0..images).collect();
        let mut latent = [0usize; 3];
        for chunk in idx.chunks(128) {
            let x = image_batch::<Cpu>(ds, chunk, &device)?;
            let (m, lv) = vae.encode(x);
            let [_, c, h, w] = m.dims();
            latent = [c, h, w];
            mean.extend(
                m.into_data()
                    .to_vec::<f32>()
                    .map_err(|e| EvalError::Measure(format!("{e:?}")))?,
            );
            logvar.extend(
                lv.into_data()
                    .to_vec::<f32>()
                    .map_err(|e| EvalError::Measure(format!("{e:?}")))?,
            );
            for &i in chunk {
                let s = ds.get(i)?;
                captions.push(s.caption);
                labels.push(s.labels);
            }
        }
        let n = mean.len() as f64;
        let mu = mean.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = mean.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n;
        // The pipeline's own scale (its U-Net was trained on it); else 1 / sd of the means.
        let scaling_factor = match encoders {
            Some(enc) => enc.vae_config.scaling_factor,
            None => 1.0 / var.sqrt().max(1e-6),
        };
        let (context, text, vae_note, text_note) = match encoders {
            Some(enc) => {
                let text = enc.text_shape();
                progress(&format!(
                    "text encoder of {} ({} tokens x {}); training the feature extractor",
                    enc.dir.display(),
                    text[0],
                    text[1]
                ));
                (
                    enc.encode_captions(&captions),
                    text,
                    serde_json::json!({"pipeline": enc.dir.display().to_string(), "scaling_factor": scaling_factor}),
                    format!("the CLIP text encoder of {}", enc.dir.display()),
                )
            }
            None => {
                let encoder = CaptionEncoder::new(
                    captions.iter().map(String::as_str),
                    dim,
                    TEXT_LEN,
                    vae_training.seed,
                );
                progress(&format!(
                    "text encoder: frozen seeded CLIP (width {dim}, 2 layers) over {} words; training the feature extractor",
                    encoder.vocabulary()
                ));
                (
                    encoder.encode(&captions),
                    [TEXT_LEN, dim],
                    serde_json::json!({"config": "block_out_channels [16, 32], layers_per_block 1, norm groups 8, 4 latent channels",
                            "reconstruction_mse": recon, "seconds": vae_seconds}),
                    format!("CLIP text transformer, width {dim}, 2 layers, frozen at seeded random init (seed {}), word vocabulary of {} words", vae_training.seed, encoder.vocabulary()),
                )
            }
        };
        let t1 = Instant::now();
        let extractor = FeatureExtractor::train(ds, feature_training, &mut |_, _, _| {})?;
        extractor.save(&tmp.join("featurenet.mpk"))?;
        let held_out = if ds.len() >= feature_training.images + 200 {
            let start = feature_training.images;
            Some(accuracy(
                &extractor,
                ds,
                start..(start + 500).min(ds.len()),
            )?)
        } else {
            None
        };
        progress(&format!(
            "feature extractor trained in {:.0} s; held-out attribute accuracy {:?}",
            t1.elapsed().as_secs_f64(),
            held_out
        ));
        let cache = LatentCache {
            manifest: Manifest {
                version: CACHE_VERSION,
                dataset: ds.name(),
                latent,
                text,
                scaling_factor,
                captions,
                labels,
                shards: Vec::new(),
                provenance: serde_json::json!({
                    "key": serde_json::from_str::<serde_json::Value>(key_json).unwrap_or_default(),
                    "vae": vae_note,
                    "text_encoder": text_note,
                    "feature_extractor": {"held_out_accuracy": held_out},
                }),
            },
            mean,
            logvar,
            context,
        };
        cache.save(&tmp)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, dir).is_err() {
        // Another process finished the same cache first: keep theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("manifest.json").exists() {
            return Err(io_err(dir, "could not move the prepared cache into place"));
        }
    }
    Ok(())
}
