//! The paired distance of a sub-network to its supernet's largest network (common random
//! numbers in sample space): both sample the proxy's fixed prompts from the same initial noise
//! with deterministic DDIM (the sampler of the recipe the supernet was trained with, the
//! proxy's guidance); the score is the relative squared distance between the final latents,
//! `Σ (x_sub − x_ref)² / Σ x_ref²` over all samples, lower = closer to the largest network.
//! The reference samples with [`REFERENCE_STEPS`] steps; a candidate may sample with fewer.
//! Measured (docs/supernet.md, seventeenth and eighteenth readings): fewer steps do not raise
//! the distance consistently (20 steps land nearer the reference than 50 for most
//! architectures on some supernets, farther on others), so it is no time-to-image quality.
//!
//! Whether it ranks architectures as training them does is measured, not assumed: it is one
//! of the supernet proxies `unas quality calibrate --paired-steps K` scores against the
//! ground truth (docs/supernet.md).

use unas_runtime::device::Cpu;
use unas_runtime::{SubNet, UNet2DConditionModel};
use unas_space::UNetArch;

use super::proxy::Proxy;
use super::supernet_store::SupernetInfo;
use crate::EvalError;

/// The reference's DDIM steps (the sampling steps of SD1.5's reference pipeline).
pub const REFERENCE_STEPS: usize = 50;

/// The largest network's samples of the proxy's fixed prompts: what candidates of one
/// supernet are compared with.
#[derive(Clone, Debug)]
pub struct PairedReference {
    latents: Vec<f32>,
    samples: usize,
    steps: usize,
}

impl PairedReference {
    /// Samples the supernet's covering network (`unet`, the architecture `info.arch`) with
    /// `steps` DDIM steps on every fixed prompt of `proxy`.
    pub fn new(
        proxy: &Proxy,
        info: &SupernetInfo,
        unet: &UNet2DConditionModel<Cpu>,
        steps: usize,
    ) -> Result<Self, EvalError> {
        let samples = proxy.prompt_items().len();
        // Extracted as a candidate's network is, so that the largest network compared with
        // itself at the same steps is at distance 0 exactly.
        let largest = SubNet::new(&info.arch, &info.arch)?.extract(unet);
        let latents = proxy.sample_latents(
            &largest,
            steps,
            samples,
            &info.settings.recipe.scheduler_config(),
        )?;
        Ok(Self {
            latents,
            samples,
            steps,
        })
    }

    /// The number of samples compared.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// `arch`'s relative squared distance to the reference when it samples with
    /// `steps` DDIM steps and the weights it inherits from `unet` (no copy of a weight is
    /// changed; the sub-network is extracted for sampling).
    pub fn distance(
        &self,
        proxy: &Proxy,
        info: &SupernetInfo,
        unet: &UNet2DConditionModel<Cpu>,
        arch: &UNetArch,
        steps: usize,
    ) -> Result<f64, EvalError> {
        let sub = SubNet::new(arch, &info.arch)?.extract(unet);
        let x = proxy.sample_latents(
            &sub,
            steps,
            self.samples,
            &info.settings.recipe.scheduler_config(),
        )?;
        relative_sq_distance(&x, &self.latents)
    }

    /// The score's label: `supernet-paired@K[N samples, …; supernet …]`, `supernets`
    /// naming the supernet(s) (topology, settings hash, seed).
    pub fn label(&self, steps: usize, supernets: &str) -> String {
        format!(
            "{}[{} samples, same noise, DDIM; vs the largest network at {} steps; supernet {}]",
            name(steps),
            self.samples,
            self.steps,
            supernets
        )
    }
}

/// The proxy's name in calibration tables: `supernet-paired@K` (K = the candidate's steps).
pub fn name(steps: usize) -> String {
    format!("supernet-paired@{steps}")
}

/// `Σ (x − r)² / Σ r²` (f64 sums); an error when the lengths differ or the reference is zero.
pub fn relative_sq_distance(x: &[f32], reference: &[f32]) -> Result<f64, EvalError> {
    if x.len() != reference.len() {
        return Err(EvalError::Measure(format!(
            "paired samples differ in size ({} vs {} values)",
            x.len(),
            reference.len()
        )));
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&a, &r) in x.iter().zip(reference) {
        let d = (a - r) as f64;
        num += d * d;
        den += (r as f64) * (r as f64);
    }
    if den == 0.0 {
        return Err(EvalError::Measure(
            "the reference samples are all zero".into(),
        ));
    }
    Ok(num / den)
}

#[cfg(test)]
mod tests {
    use super::relative_sq_distance;

    #[test]
    fn the_distance_is_relative_and_zero_for_identical_samples() {
        let r = [1.0f32, -2.0, 2.0];
        assert_eq!(relative_sq_distance(&r, &r).unwrap(), 0.0);
        // Σ (x − r)² = 1 + 0 + 4 = 5; Σ r² = 9.
        let x = [2.0f32, -2.0, 0.0];
        assert!((relative_sq_distance(&x, &r).unwrap() - 5.0 / 9.0).abs() < 1e-12);
        assert!(relative_sq_distance(&x[..2], &r).is_err());
        assert!(relative_sq_distance(&[0.0; 3], &[0.0; 3]).is_err());
    }
}
