//! Time to an image: a text-to-image pipeline encodes the prompt (and the negative prompt),
//! runs the U-Net once per sampling step (both guidance branches in one batch of 2) with the
//! scheduler's arithmetic, and decodes the final latent with the VAE. Per image,
//! `(fixed + steps × (U-Net step + per-step extra)) / images` — what a search over sampling
//! steps and blocks together minimises (DeciDiffusion's "time to the same quality").

use serde::{Deserialize, Serialize};

/// The parts of a pipeline around its U-Net steps, for one call of the pipeline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageParts {
    /// Text encoder and VAE decoder, once per call (ms).
    pub fixed_ms: f64,
    /// Scheduler and guidance arithmetic per step, beside the U-Net (ms).
    pub step_extra_ms: f64,
    /// Images one call makes (the U-Net batch / 2 with guidance, at least 1).
    pub images: usize,
    /// Where the figures come from (`profile:a10g kernels`, `measured on this CPU`).
    pub source: String,
}

impl ImageParts {
    /// Milliseconds per image at `steps` sampling steps of a U-Net step of `step_ms`.
    pub fn per_image_ms(&self, step_ms: f64, steps: usize) -> f64 {
        (self.fixed_ms + steps as f64 * (step_ms + self.step_extra_ms)) / self.images.max(1) as f64
    }
}

/// Images one call of a pipeline makes at U-Net batch `batch` (guidance doubles the batch).
pub fn images_per_call(batch: usize) -> usize {
    (batch / 2).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_image_time_adds_the_fixed_parts_once_and_the_steps_linearly() {
        let p = ImageParts {
            fixed_ms: 100.0,
            step_extra_ms: 1.0,
            images: 2,
            source: "test".into(),
        };
        assert_eq!(p.per_image_ms(9.0, 10), (100.0 + 10.0 * 10.0) / 2.0);
        assert_eq!(p.per_image_ms(9.0, 20) - p.per_image_ms(9.0, 10), 50.0);
        assert_eq!(images_per_call(2), 1);
        assert_eq!(images_per_call(1), 1);
        assert_eq!(images_per_call(8), 4);
    }
}
