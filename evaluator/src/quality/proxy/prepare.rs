//! Preparing the proxy: the data, the small VAE, the extractor and the teacher.

#[allow(unused_imports)]
use super::*;

impl Proxy {
    /// Prepares the shared data for candidates with cross-attention width
    /// `cross_attention_dim`: opens the dataset, and trains/encodes (or loads from the cache)
    /// the small VAE, the latents, the text embeddings and the feature extractor. `progress`
    /// receives one line per stage.
    pub fn prepare(
        cfg: &ProxyConfig,
        cross_attention_dim: usize,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self, EvalError> {
        cfg.check()?;
        // The teacher's spec is checked before any data is prepared.
        let teacher = match &cfg.teacher {
            Some(spec) => Some((
                spec.as_str(),
                unas_space::load_arch(spec).map_err(|e| config_err("teacher", e))?,
            )),
            None => None,
        };
        let ds = open_dataset(&cfg.data, cfg.image_size, cfg.data_seed)?;
        if ds.len() < 2 {
            return Err(config_err(
                "data",
                format!(
                    "{} has {} image(s); at least 2 are needed",
                    ds.name(),
                    ds.len()
                ),
            ));
        }
        let images = cfg.images.min(ds.len());
        let encoders = match &cfg.pipeline {
            None => None,
            Some(dir) => {
                progress(&format!(
                    "loading the VAE and text encoder of {}",
                    dir.display()
                ));
                let enc = PipelineEncoders::load(dir)?;
                let [_, width] = enc.text_shape();
                if width != cross_attention_dim {
                    return Err(config_err(
                        "pipeline",
                        format!(
                            "{}: its text encoder is {width} wide; the candidates' \
                             cross_attention_dim is {cross_attention_dim}",
                            dir.display()
                        ),
                    ));
                }
                let f = enc.vae_config.downscale();
                if !cfg.image_size.is_multiple_of(f) {
                    return Err(config_err(
                        "image_size",
                        format!(
                            "{} is not a multiple of {f}, the downsampling of {}'s VAE",
                            cfg.image_size,
                            dir.display()
                        ),
                    ));
                }
                Some(enc)
            }
        };
        let vae_training = VaeTraining {
            seed: cfg.data_seed,
            steps: cfg.vae_steps,
            ..VaeTraining::default()
        };
        let feature_training = FeatureTraining {
            images: ds.len().min(cfg.extractor_images),
            epochs: cfg.extractor_epochs,
            seed: cfg.data_seed,
            ..FeatureTraining::default()
        };
        let key = CacheKey {
            version: CACHE_VERSION,
            dataset: ds.name(),
            images,
            image_size: cfg.image_size,
            text: encoders.as_ref().map_or(
                [TEXT_LEN, cross_attention_dim],
                PipelineEncoders::text_shape,
            ),
            seed: cfg.data_seed,
            vae: &vae_training,
            features: FeatureTrainingKey {
                images: feature_training.images,
                epochs: feature_training.epochs,
                batch: feature_training.batch,
                lr: feature_training.lr,
                seed: feature_training.seed,
            },
            pipeline: cfg
                .pipeline
                .as_deref()
                .map(pipeline_data::cache_key)
                .transpose()?,
        };
        let key_json = serde_json::to_string(&key).expect("serialisable");
        let root = cfg.cache_dir.clone().unwrap_or_else(default_cache_root);
        let dir = root.join(format!("proxy-{}", sha16(key_json.as_bytes())));
        let extractor_name = format!(
            "featurenet[{}; {} images x {} epochs, seed {}]",
            ds.name(),
            feature_training.images,
            feature_training.epochs,
            feature_training.seed
        );
        if let Some(p) = cfg.prepared.as_ref().filter(|p| !p.is_dir()) {
            // A missing folder would silently train a VAE and extractor of its own: other
            // latents than those the shipped supernets were trained on.
            return Err(EvalError::File {
                file: p.clone(),
                message: "quality.prepared: no such folder (relative paths are read from the \
                          working directory)"
                    .into(),
            });
        }
        let shipped = cfg
            .prepared
            .as_ref()
            .map(|p| p.join(dir.file_name().expect("named")))
            .filter(|p| p.join("manifest.json").exists());
        // Workers on one machine share the cache: one prepares, the others wait for it.
        let _lock = PrepareLock::acquire(&dir, progress)?;
        if let (false, Some(src)) = (dir.join("manifest.json").exists(), &shipped) {
            progress(&format!("copying prepared data from {}", src.display()));
            copy_prepared(src, &dir, &key_json)?;
        }
        if !dir.join("manifest.json").exists() {
            build_cache(
                &*ds,
                images,
                cross_attention_dim,
                &vae_training,
                encoders.as_ref(),
                &feature_training,
                &key_json,
                &dir,
                progress,
            )?;
        } else {
            progress(&format!("using cached data in {}", dir.display()));
        }
        drop(_lock);
        let cache = LatentCache::load(&dir)?;
        let vae = match &encoders {
            Some(enc) => enc.vae.clone(),
            None => load_vae(&dir.join("vae.mpk"))?,
        };
        let net_file = dir.join("featurenet.mpk");
        let extractor = if net_file.exists() {
            Some(FeatureExtractor::load(&net_file, &*ds, extractor_name)?)
        } else {
            None
        };
        let inception = match cfg.features.strip_prefix("inception:") {
            Some(file) => {
                progress(&format!("loading Inception-v3 weights from {file}"));
                Some(Box::new(InceptionFid::load(std::path::Path::new(file))?))
            }
            None if extractor.is_none() => {
                return Err(config_err(
                    "features",
                    format!(
                        "{} has no attribute labels to train the featurenet extractor on; \
                         use features = \"inception:FILE\" with Inception-v3 weights",
                        ds.name()
                    ),
                ))
            }
            None => None,
        };
        let uncond = match &encoders {
            Some(enc) => enc.encode_captions(&[String::new()]),
            None => CaptionEncoder::new(
                cache.manifest.captions.iter().map(String::as_str),
                cross_attention_dim,
                TEXT_LEN,
                cfg.data_seed,
            )
            .encode(&[String::new()]),
        };
        // Real reference: the decoded-space images the candidates imitate.
        let reference_images: Vec<Vec<f32>> = (0..images)
            .map(|i| ds.get(i).map(|s| s.pixels))
            .collect::<Result<_, _>>()?;
        let reference = match (&inception, &extractor) {
            (Some(inc), _) => inc.features(&reference_images, cfg.image_size)?,
            (None, Some(net)) => net.features(&reference_images, cfg.image_size)?,
            (None, None) => unreachable!("checked above"),
        };
        let reference_stats = reference.stats()?;
        // Fixed prompts: captions of samples drawn once from the data seed.
        let mut rng = Rng::seed(cfg.data_seed ^ 0x7072_6f6d_7074);
        let prompts = (0..cfg.samples).map(|_| rng.below(images)).collect();
        let mut proxy = Self {
            cfg: cfg.clone(),
            cache,
            cache_dir: dir,
            vae,
            extractor,
            inception,
            reference,
            reference_stats,
            uncond,
            prompts,
            attributes: ds.attributes().iter().map(|a| a.name.clone()).collect(),
            teacher: None,
        };
        if let Some((spec, arch)) = teacher {
            proxy.teacher = Some(proxy.prepare_teacher(spec, &arch, progress)?);
        }
        Ok(proxy)
    }

    /// Loads the teacher `spec` (`arch`) trained for `teacher_steps` from the cache, or trains and
    /// caches it.
    fn prepare_teacher(
        &self,
        spec: &str,
        arch: &UNetArch,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Teacher, EvalError> {
        self.check_arch(arch)
            .map_err(|e| config_err("teacher", e))?;
        let steps = self.cfg.teacher_steps;
        let key = serde_json::json!({
            "arch": arch.hash_id(),
            "steps": steps,
            "batch": self.cfg.batch,
            "recipe": self.cfg.recipe,
            "cond_dropout": self.cfg.cond_dropout,
            "seed": self.cfg.data_seed,
            "version": CACHE_VERSION,
        });
        let file = self
            .cache_dir
            .join(format!("teacher-{}.mpk", sha16(key.to_string().as_bytes())));
        let unet = if file.exists() {
            progress(&format!("using cached teacher {}", file.display()));
            let device = Default::default();
            load_module(
                UNet2DConditionModel::<Cpu>::from_plan(arch, &arch.plan()?, &device),
                &file,
            )?
        } else {
            progress(&format!(
                "training the teacher `{spec}` for {steps} steps (once; cached)"
            ));
            let t0 = Instant::now();
            let mut last = 0;
            let (unet, loss) = self.train(arch, self.cfg.data_seed, steps, &mut |step, _| {
                if step * 10 / steps > last {
                    last = step * 10 / steps;
                    progress(&format!("teacher: step {step}/{steps}"));
                }
            })?;
            // Written beside its place, then renamed: never a half-written teacher.
            let tmp = self
                .cache_dir
                .join(format!(".teacher-{}.mpk", std::process::id()));
            save_module(&unet, &tmp)?;
            std::fs::rename(&tmp, &file).map_err(|e| io_err(&file, e))?;
            progress(&format!(
                "teacher trained in {:.0} s (final loss {loss:.4})",
                t0.elapsed().as_secs_f64()
            ));
            unet
        };
        Ok(Teacher {
            label: format!("{spec} x {steps}"),
            weights: RoleWeights::from_unet(arch, &unet)?,
        })
    }
}

/// An exclusive lock on the preparations in one cache root: an advisory lock on the root
/// folder itself (no lock file, so a failed preparation leaves nothing behind), which the OS
/// releases when the holder exits or dies. Processes started together prepare the data once
/// and the others then load it.
struct PrepareLock {
    _root: std::fs::File,
}

impl PrepareLock {
    /// Waits for and takes the lock of the cache root holding `dir`; says so in `progress`
    /// when another process holds it.
    fn acquire(dir: &std::path::Path, progress: &mut dyn FnMut(&str)) -> Result<Self, EvalError> {
        let root = dir.parent().unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(root).map_err(|e| io_err(root, e))?;
        let f = std::fs::File::open(root).map_err(|e| io_err(root, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                progress(&format!(
                    "waiting for another process preparing data in {}",
                    root.display()
                ));
                f.lock().map_err(|e| io_err(root, e))?;
            }
            // A file system without advisory locks: prepare unlocked (the cache folder is
            // still written atomically, so concurrent preparations only repeat work).
            Err(std::fs::TryLockError::Error(e)) => progress(&format!(
                "warning: cannot lock {} ({e}); preparing without the lock",
                root.display()
            )),
        }
        Ok(Self { _root: f })
    }
}
