//! [`ProxyQuality`]: the proxy-quality evaluation ([`Proxy`]: brief training, sampling, Fréchet
//! distance in a declared feature space) as a study's [`QualityEvaluator`].

use std::collections::BTreeMap;

use unas_evaluator::quality::proxy::{Objective, Proxy, ProxyConfig, ProxyScore};
use unas_evaluator::quality::supernet_scorer::SupernetScorer;
use unas_evaluator::EvalError;
use unas_space::UNetArch;

use crate::error::SearchError;
use crate::objective::{QualityError, QualityEvaluator, QualityResult, Scored};

/// A prepared [`Proxy`] scoring candidates. With `objective = "fd"`: score = Fréchet distance
/// (lower is better), metric = the proxy's label, details = KID (and its spread), prompt
/// adherence, final training loss, timings and the sample count. With
/// `objective = "supernet-val-loss"`: score = the validation loss with weights inherited from
/// the candidate's supernet, details = the loss per timestep band; `"supernet-finetune"`: the
/// same after `finetune_steps` steps of fine-tuning from those weights;
/// `"supernet-paired"`: the paired distance of its samples to the supernet's largest
/// network's ([`SupernetScorer::paired`]). A candidate with its own `sampling_steps` (a
/// time-to-image search) is sampled with that many steps by `fd` and `supernet-paired`.
pub struct ProxyQuality {
    proxy: Proxy,
    supernets: Option<SupernetScorer>,
}

impl ProxyQuality {
    /// Prepares the proxy's shared data (dataset, small VAE, latents, text embeddings,
    /// extractor; cached on disk) for candidates with `cross_attention_dim`. `progress` gets
    /// one line per stage.
    pub fn prepare(
        cfg: &ProxyConfig,
        cross_attention_dim: usize,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Self, SearchError> {
        let proxy =
            Proxy::prepare(cfg, cross_attention_dim, progress).map_err(SearchError::Quality)?;
        Self::new(proxy)
    }

    /// Wraps a prepared proxy (loading its supernets when its objective needs them).
    pub fn new(proxy: Proxy) -> Result<Self, SearchError> {
        let cfg = proxy.config();
        let finetune = match cfg.objective {
            Objective::SupernetFinetune => Some(cfg.finetune_steps),
            _ => None,
        };
        let supernets = match (cfg.objective.uses_supernets(), &cfg.supernets) {
            (true, Some(dir)) => {
                Some(SupernetScorer::load(dir, &proxy, finetune).map_err(SearchError::Quality)?)
            }
            _ => None,
        };
        Ok(Self { proxy, supernets })
    }

    /// The wrapped proxy.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Images of `arch` for people to look at: the first `n` fixed prompts, sampled with the
    /// proxy's fixed noise, scheduler and guidance from the weights the objective scored
    /// (inherited from the supernet, zero-shot), decoded by the data's VAE. The same prompts
    /// and noise for every architecture, so their grids compare side by side; with the
    /// architecture's own step count when a time-to-image search gave it one. `None` for an
    /// objective without supernets (its weights exist only during its training).
    pub fn samples(&self, arch: &UNetArch, n: usize) -> Option<Result<Samples, EvalError>> {
        let scorer = self.supernets.as_ref()?;
        let run = || {
            let unet = scorer.subnetwork(arch)?;
            let cfg = self.proxy.config();
            Ok(Samples {
                images: self.proxy.sample_first(
                    &unet,
                    arch.sampling_steps.unwrap_or(cfg.sampling_steps),
                    n,
                )?,
                size: cfg.image_size,
                prompts: self.proxy.prompt_texts(n),
            })
        };
        Some(run())
    }
}

/// Sampled images of one architecture ([`ProxyQuality::samples`]).
#[derive(Clone, Debug)]
pub struct Samples {
    /// Images `[3, size, size]`, channel-major, in [0, 1].
    pub images: Vec<Vec<f32>>,
    /// Their side in pixels.
    pub size: usize,
    /// The prompt of each image.
    pub prompts: Vec<String>,
}

/// A proxy score as a [`QualityResult`].
pub fn quality_result(s: &ProxyScore) -> QualityResult {
    let details: BTreeMap<String, f64> = [
        ("kid", s.kid),
        ("kid_std", s.kid_std),
        ("adherence", s.adherence),
        ("final_loss", s.final_loss),
        ("train_seconds", s.train_seconds),
        ("sample_seconds", s.sample_seconds),
        ("samples", s.samples as f64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    QualityResult {
        score: s.fd,
        metric: s.metric.clone(),
        details,
    }
}

/// Maps an evaluation error: divergence stays divergence, anything else is a failure.
pub fn quality_error(e: EvalError) -> QualityError {
    match e {
        EvalError::Diverged(m) => QualityError::Diverged(m),
        other => QualityError::Failed(other.to_string()),
    }
}

impl QualityEvaluator for ProxyQuality {
    fn describe(&self) -> String {
        let cfg = self.proxy.config();
        match &self.supernets {
            Some(s) if cfg.objective == Objective::SupernetPaired => {
                s.describe_paired(cfg.paired_steps)
            }
            Some(s) => s.describe(),
            None => self.proxy.describe(),
        }
    }

    fn evaluate(&self, arch: &UNetArch, seed: u64) -> Result<QualityResult, QualityError> {
        self.evaluate_rung(arch, seed, 0)
    }

    /// With a supernet objective: 1 + `rung_finetune_steps` rungs.
    fn rungs(&self) -> usize {
        match &self.supernets {
            Some(_) => 1 + self.proxy.config().rung_finetune_steps.len(),
            None => 1,
        }
    }

    /// Rung `r ≥ 1`: the supernet score after `rung_finetune_steps[r - 1]` fine-tuning steps.
    fn evaluate_rung(&self, arch: &UNetArch, seed: u64, rung: usize) -> Scored {
        if rung >= self.rungs() {
            return Err(QualityError::Failed(format!(
                "{} has no rung {rung}",
                self.describe()
            )));
        }
        if let Some(s) = &self.supernets {
            // Deterministic: the evaluation seed plays no part.
            let cfg = self.proxy.config();
            if cfg.objective == Objective::SupernetPaired {
                // A time-to-image candidate is scored at its own step count.
                let steps = arch.sampling_steps.unwrap_or(cfg.paired_steps);
                let (d, metric) = s.paired(&self.proxy, arch, steps).map_err(quality_error)?;
                return Ok(QualityResult {
                    score: d,
                    metric,
                    details: BTreeMap::new(),
                });
            }
            let score = match rung {
                0 => s.score(&self.proxy, arch),
                r => {
                    let k = self.proxy.config().rung_finetune_steps[r - 1];
                    s.score_with(&self.proxy, arch, Some(k))
                }
            }
            .map_err(quality_error)?;
            let details = score
                .loss
                .bands
                .iter()
                .enumerate()
                .map(|(j, v)| (format!("val_loss_band_{j}"), *v))
                .collect();
            return Ok(QualityResult {
                score: score.loss.overall,
                metric: score.metric,
                details,
            });
        }
        self.proxy
            .evaluate(arch, seed)
            .map(|s| quality_result(&s))
            .map_err(quality_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_and_errors_map() {
        let s = ProxyScore {
            fd: 12.5,
            kid: 0.1,
            kid_std: 0.01,
            adherence: 0.5,
            final_loss: 0.2,
            train_seconds: 3.0,
            sample_seconds: 1.0,
            samples: 16,
            metric: "fd[x; 16 samples]".into(),
        };
        let q = quality_result(&s);
        assert_eq!(q.score, 12.5);
        assert_eq!(q.metric, "fd[x; 16 samples]");
        assert_eq!(q.details["samples"], 16.0);
        assert_eq!(q.details["kid"], 0.1);
        assert_eq!(q.details.len(), 7);
        assert_eq!(
            quality_error(EvalError::Diverged("step 3".into())),
            QualityError::Diverged("step 3".into())
        );
        assert!(matches!(
            quality_error(EvalError::Unsupported("x".into())),
            QualityError::Failed(m) if m == "x"
        ));
    }
}
