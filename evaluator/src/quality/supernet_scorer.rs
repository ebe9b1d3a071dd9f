//! The supernet objectives of a search: each candidate's validation loss with the weights it
//! inherits from the trained supernet of its topology, on the proxy's frozen validation set —
//! zero-shot, or after a short fine-tune from those weights with the same batches, timesteps
//! and noise for every candidate (common random numbers).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use unas_runtime::device::Cpu;
use unas_runtime::{SubNet, UNet2DConditionModel};
use unas_space::UNetArch;

use super::paired::{PairedReference, REFERENCE_STEPS};
use super::proxy::{Proxy, VAL_BATCH};
use super::supernet_store::{self, SupernetInfo};
use super::val_loss::{ValLoss, ValidationSet};
use crate::EvalError;

/// Trained supernets (one per topology) and the validation set they score on.
pub struct SupernetScorer {
    supernets: Vec<(SupernetInfo, UNet2DConditionModel<Cpu>)>,
    /// Each supernet's largest-network samples for the paired distance, made when first
    /// needed.
    references: Vec<OnceLock<PairedReference>>,
    val: ValidationSet,
    root: PathBuf,
    finetune: Option<usize>,
}

impl std::fmt::Debug for SupernetScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupernetScorer")
            .field("root", &self.root)
            .field("supernets", &self.supernets.len())
            .field("finetune", &self.finetune)
            .finish()
    }
}

/// A candidate's supernet score.
#[derive(Clone, Debug, PartialEq)]
pub struct SupernetScore {
    /// The validation loss (overall and per band).
    pub loss: ValLoss,
    /// What the score is: the validation set, the supernet's topology, hash and seed.
    pub metric: String,
}

/// The validation loss of `arch` after `steps` fine-tuning steps from the weights it inherits
/// from `unet` (covering architecture `info.arch`); the batches, timesteps and noise come from
/// the supernet's seed alone, so every candidate sees the same ones.
pub fn finetuned(
    proxy: &Proxy,
    info: &SupernetInfo,
    unet: &UNet2DConditionModel<Cpu>,
    arch: &UNetArch,
    steps: usize,
    val: &ValidationSet,
) -> Result<ValLoss, EvalError> {
    let start = SubNet::new(arch, &info.arch)?.extract(unet);
    proxy.finetune(arch, start, info.settings.seed, steps, val)
}

impl SupernetScorer {
    /// Loads every supernet under `root` (the folder itself, or its sub-folders holding a
    /// `supernet.json`; [`supernet_store::load`] checks weights and settings hash); each must
    /// have been trained on `proxy`'s data. With `finetune = Some(k)` a candidate is scored
    /// after `k` fine-tuning steps.
    pub fn load(root: &Path, proxy: &Proxy, finetune: Option<usize>) -> Result<Self, EvalError> {
        let dirs = supernet_store::supernet_dirs(root)?;
        if dirs.is_empty() {
            return Err(EvalError::File {
                file: root.to_path_buf(),
                message: "no trained supernet here (run `unas supernet train --out DIR`)".into(),
            });
        }
        let data = proxy.describe_data();
        let mut supernets = Vec::new();
        for d in dirs {
            let (info, unet) = supernet_store::load(&d)?;
            if info.data != data {
                return Err(EvalError::File {
                    file: d.join("supernet.json"),
                    message: format!(
                        "trained on {}, the study's [quality] data is {data}",
                        info.data
                    ),
                });
            }
            supernets.push((info, unet));
        }
        Ok(Self {
            references: supernets.iter().map(|_| OnceLock::new()).collect(),
            supernets,
            val: proxy.validation_set(),
            root: root.to_path_buf(),
            finetune,
        })
    }

    /// Each loaded supernet as `topology settings-hash seed S`.
    fn names(&self) -> Vec<String> {
        self.supernets
            .iter()
            .map(|(i, _)| {
                format!(
                    "{} {} seed {}",
                    i.topology, i.settings_hash, i.settings.seed
                )
            })
            .collect()
    }

    /// One line describing the objective.
    pub fn describe(&self) -> String {
        let names = self.names();
        let what = match self.finetune {
            Some(k) => format!("after {k} fine-tuning steps from the inherited weights"),
            None => "with inherited weights".to_string(),
        };
        format!(
            "supernet validation loss {what} on {} ({})",
            self.val.label(),
            names.join(", ")
        )
    }

    /// One line describing the paired-distance objective with candidates sampling `steps`
    /// DDIM steps.
    pub fn describe_paired(&self, steps: usize) -> String {
        let names = self.names();
        format!(
            "paired distance of samples ({steps} DDIM steps, inherited weights) to the \
             largest network's ({REFERENCE_STEPS} steps) ({})",
            names.join(", ")
        )
    }

    /// `arch` as a standalone U-Net with the weights it inherits from the first loaded
    /// supernet that holds it (zero-shot: no fine-tuning), e.g. to sample images from.
    pub fn subnetwork(&self, arch: &UNetArch) -> Result<UNet2DConditionModel<Cpu>, EvalError> {
        let (info, unet) = self
            .supernets
            .iter()
            .find(|(info, _)| supernet_store::holds(info, arch).is_ok())
            .ok_or_else(|| {
                EvalError::Unsupported(format!(
                    "arch `{}` is in none of the supernets in {}",
                    arch.hash_id(),
                    self.root.display()
                ))
            })?;
        let sub = unas_runtime::SubNet::new(arch, &info.arch)
            .map_err(|e| EvalError::Unsupported(e.to_string()))?;
        Ok(sub.extract(unet))
    }

    /// The validation loss of `arch` with weights inherited from its topology's supernet
    /// (after the fine-tune, when the scorer has one: `proxy` trains it, its batches,
    /// timesteps and noise drawn from the supernet's seed alone); an error when no loaded
    /// supernet holds it ([`supernet_store::holds`]: so a folder of few-shot group supernets
    /// scores each candidate by its own group's). When several supernets of that topology are loaded (seeds of one
    /// training command), the score is the mean over them, overall and per band: an ensemble
    /// whose seed-to-seed noise shrinks with their number. Supernets of another topology are
    /// never mixed in (each supernet has its own loss level).
    pub fn score(&self, proxy: &Proxy, arch: &UNetArch) -> Result<SupernetScore, EvalError> {
        self.score_with(proxy, arch, self.finetune)
    }

    /// [`Self::score`] with `finetune` fine-tuning steps instead of the scorer's own (a higher
    /// rung of successive halving).
    pub fn score_with(
        &self,
        proxy: &Proxy,
        arch: &UNetArch,
        finetune: Option<usize>,
    ) -> Result<SupernetScore, EvalError> {
        let (topology, members) = self.members(arch)?;
        let members: Vec<_> = members
            .into_iter()
            .map(|i| (&self.supernets[i].0, &self.supernets[i].1))
            .collect();
        let mut losses = Vec::with_capacity(members.len());
        for (info, unet) in &members {
            losses.push(match finetune {
                None => supernet_store::score(info, unet, arch, &self.val, VAL_BATCH)?,
                Some(k) => finetuned(proxy, info, unet, arch, k, &self.val)?,
            });
        }
        let name = match finetune {
            None => "supernet-val-loss".to_string(),
            Some(k) => format!("supernet-finetune@{k}"),
        };
        let which: Vec<String> = members
            .iter()
            .map(|(info, _)| format!("{} seed {}", info.settings_hash, info.settings.seed))
            .collect();
        let metric = if members.len() == 1 {
            format!(
                "{name}[{}; supernet {topology} {}]",
                self.val.label(),
                which[0]
            )
        } else {
            format!(
                "{name}[{}; mean over {} supernets {topology}: {}]",
                self.val.label(),
                members.len(),
                which.join(", ")
            )
        };
        Ok(SupernetScore {
            loss: mean_loss(&losses),
            metric,
        })
    }

    /// The supernets holding `arch` (indices into the loaded ones): all of one topology, the
    /// first that holds it; an error naming why each refuses when none does.
    fn members(&self, arch: &UNetArch) -> Result<(&str, Vec<usize>), EvalError> {
        let mut why = Vec::new();
        let mut topology: Option<&str> = None;
        let mut members = Vec::new();
        for (i, (info, _)) in self.supernets.iter().enumerate() {
            if topology.is_some_and(|t| t != info.topology) {
                continue;
            }
            match supernet_store::holds(info, arch) {
                Ok(()) => {
                    topology = Some(&info.topology);
                    members.push(i);
                }
                Err(e) => why.push(format!("{}: {e}", info.topology)),
            }
        }
        match topology {
            Some(t) => Ok((t, members)),
            None => Err(EvalError::Unsupported(format!(
                "arch `{}` is in none of the supernets in {} ({})",
                arch.hash_id(),
                self.root.display(),
                why.join("; ")
            ))),
        }
    }

    /// `arch`'s paired distance ([`super::paired`]) to the largest network of its topology's
    /// supernet when it samples with `steps` DDIM steps (the largest with
    /// [`REFERENCE_STEPS`]); the mean over the supernets of that topology, as [`Self::score`].
    /// Returns the distance and its label.
    pub fn paired(
        &self,
        proxy: &Proxy,
        arch: &UNetArch,
        steps: usize,
    ) -> Result<(f64, String), EvalError> {
        let (topology, members) = self.members(arch)?;
        let mut sum = 0.0;
        let mut reference = None;
        for &i in &members {
            let (info, unet) = &self.supernets[i];
            let r = match self.references[i].get() {
                Some(r) => r,
                None => {
                    let r = PairedReference::new(proxy, info, unet, REFERENCE_STEPS)?;
                    self.references[i].get_or_init(|| r)
                }
            };
            sum += r.distance(proxy, info, unet, arch, steps)?;
            reference = Some(r);
        }
        let which: Vec<String> = members
            .iter()
            .map(|&i| {
                let info = &self.supernets[i].0;
                format!("{} seed {}", info.settings_hash, info.settings.seed)
            })
            .collect();
        let label = reference
            .expect("members is not empty")
            .label(steps, &format!("{topology} {}", which.join(", ")));
        Ok((sum / members.len() as f64, label))
    }
}

/// The mean of several validation losses, overall and per band.
fn mean_loss(losses: &[ValLoss]) -> ValLoss {
    let n = losses.len() as f64;
    let bands = losses[0].bands.len();
    ValLoss {
        overall: losses.iter().map(|l| l.overall).sum::<f64>() / n,
        bands: (0..bands)
            .map(|j| losses.iter().map(|l| l.bands[j]).sum::<f64>() / n)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::{mean_loss, ValLoss};

    #[test]
    fn the_ensemble_is_the_mean_overall_and_per_band() {
        let a = ValLoss {
            overall: 0.25,
            bands: vec![0.5, 0.0],
        };
        let b = ValLoss {
            overall: 0.75,
            bands: vec![1.0, 0.5],
        };
        let m = mean_loss(&[a.clone(), b]);
        assert_eq!(m.overall, 0.5);
        assert_eq!(m.bands, vec![0.75, 0.25]);
        assert_eq!(mean_loss(std::slice::from_ref(&a)), a);
    }
}
