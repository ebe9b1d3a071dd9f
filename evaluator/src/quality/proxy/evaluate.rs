//! The whole evaluation of one candidate, its score and its on-disk memo.

#[allow(unused_imports)]
use super::*;

/// The result of one proxy evaluation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ProxyScore {
    /// Fréchet distance between generated and real images in the extractor's feature space
    /// (the score that is minimised).
    pub fd: f64,
    /// KID (unbiased MMD², cubic kernel), mean over subsets.
    pub kid: f64,
    /// Standard deviation of KID over the subsets.
    pub kid_std: f64,
    /// Mean prompt adherence over the dataset's attributes (share of generated images whose
    /// predicted attribute equals the prompted one), in [0, 1].
    pub adherence: f64,
    /// Mean training loss over the last 10 % of the steps.
    pub final_loss: f64,
    /// Training wall time in seconds.
    pub train_seconds: f64,
    /// Sampling, decoding and scoring wall time in seconds.
    pub sample_seconds: f64,
    /// Generated images scored.
    pub samples: usize,
    /// Label of the score: `fd[featurenet[shapes(...)...]; 128 samples; 10 DDIM steps]`.
    pub metric: String,
}

impl Proxy {
    /// The whole proxy evaluation of `arch` with seed `seed` at the configured budget.
    pub fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<ProxyScore, EvalError> {
        self.evaluate_with(arch, seed, self.cfg.steps)
    }

    /// As [`Proxy::evaluate`] with `steps` training steps. Scores are memoised in the cache
    /// folder (`scores/<key>.json`, key = hash of the arch, seed, steps and every setting that
    /// changes the score), so an architecture is never trained twice for the same question
    /// (resumed studies, benchmarks, calibration re-runs). The times in a memoised score are
    /// those of the run that computed it.
    pub fn evaluate_with(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
    ) -> Result<ProxyScore, EvalError> {
        let memo = self.memo_path(arch, seed, steps);
        if let Some(score) = std::fs::read_to_string(&memo)
            .ok()
            .and_then(|t| serde_json::from_str::<ProxyScore>(&t).ok())
        {
            return Ok(score);
        }
        let score = self.compute(arch, seed, steps)?;
        if let Some(dir) = memo.parent() {
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = dir.join(format!(".{}-{n}.tmp", std::process::id()));
            let text = serde_json::to_string_pretty(&score).expect("serialisable");
            if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, &memo);
            }
        }
        Ok(score)
    }

    /// As [`Proxy::evaluate_with`], computed from scratch: never reads nor writes the score
    /// memo (determinism checks, noise measurements).
    pub fn evaluate_uncached(
        &self,
        arch: &UNetArch,
        seed: u64,
        steps: usize,
    ) -> Result<ProxyScore, EvalError> {
        self.compute(arch, seed, steps)
    }

    /// Where the memoised score of (`arch`, `seed`, `steps`) lives.
    pub fn memo_path(&self, arch: &UNetArch, seed: u64, steps: usize) -> PathBuf {
        let mut cfg = self.cfg.clone();
        cfg.cache_dir = None;
        cfg.steps = steps;
        let key = serde_json::json!({
            "arch": arch.hash_id(),
            "seed": seed,
            "config": cfg,
            "version": CACHE_VERSION,
        });
        self.cache_dir.join("scores").join(format!(
            "{}-{}.json",
            arch.hash_id(),
            sha16(key.to_string().as_bytes())
        ))
    }

    fn compute(&self, arch: &UNetArch, seed: u64, steps: usize) -> Result<ProxyScore, EvalError> {
        let t0 = Instant::now();
        let (unet, final_loss) = self.train(arch, seed, steps, &mut |_, _| {})?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        // A time-to-image candidate samples with its own step count.
        let sampling_steps = arch.sampling_steps.unwrap_or(self.cfg.sampling_steps);
        let images = self.sample(&unet, sampling_steps)?;
        let (fd, kid, adherence) = self.score(&images)?;
        Ok(ProxyScore {
            fd,
            kid: kid.mean,
            kid_std: kid.std,
            adherence,
            final_loss,
            train_seconds,
            sample_seconds: t1.elapsed().as_secs_f64(),
            samples: images.len(),
            metric: self.metric_label(sampling_steps),
        })
    }
}
