//! This machine's time for the parts of the proxy's text-to-image pipeline around its U-Net
//! steps (the frozen caption encoder and the small VAE's decoder), for a time-to-image search
//! priced by a table of U-Net steps alone (`lut:`, `measured`).

use std::time::Instant;

use burn::tensor::{Tensor, TensorData};

use super::Proxy;
use crate::latency::image::{images_per_call, ImageParts};
use crate::latency::LatencySetting;
use crate::EvalError;

impl Proxy {
    /// Times, on this CPU, one call's text encoding (the prompt and the empty negative prompt
    /// for each image) and VAE decode (`images` latents at `setting.latent`): the lower
    /// quartile of `repeats` runs after one warm-up. The scheduler's per-step arithmetic on
    /// latents this small is not timed (`step_extra_ms` 0).
    pub fn image_parts(
        &self,
        setting: &LatencySetting,
        repeats: usize,
    ) -> Result<ImageParts, EvalError> {
        let images = images_per_call(setting.batch);
        let encoder = self.caption_encoder();
        let prompt = self
            .cache()
            .manifest
            .captions
            .first()
            .cloned()
            .unwrap_or_default();
        let captions: Vec<String> = (0..images)
            .flat_map(|_| [prompt.clone(), String::new()])
            .collect();
        let channels = self.cache().manifest.latent[0];
        let side = setting.latent;
        let device = Default::default();
        let latents = Tensor::from_data(
            TensorData::new(
                vec![0.1f32; images * channels * side * side],
                [images, channels, side, side],
            ),
            &device,
        );
        let lower_quartile = |f: &mut dyn FnMut()| {
            f();
            let mut ms: Vec<f64> = (0..repeats.max(1))
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            ms.sort_by(f64::total_cmp);
            ms[(ms.len() - 1) / 4]
        };
        let text_ms = lower_quartile(&mut || {
            std::hint::black_box(encoder.encode(&captions));
        });
        // `into_data` waits for the decoder's result.
        let vae_ms = lower_quartile(&mut || {
            std::hint::black_box(self.vae().decode(latents.clone()).into_data());
        });
        Ok(ImageParts {
            fixed_ms: text_ms + vae_ms,
            step_extra_ms: 0.0,
            images,
            source: format!(
                "measured here: caption encoder {text_ms:.2} ms + small VAE decode {vae_ms:.2} ms \
                 per call (lower quartile of {repeats}); scheduler step not timed"
            ),
        })
    }
}
