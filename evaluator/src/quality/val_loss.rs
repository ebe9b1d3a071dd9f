//! A deterministic validation loss with common random numbers: the recipe's weighted denoising
//! loss on a frozen set of held-out latent means × stratified timesteps × fixed noise. Every
//! candidate is scored on the same items, so differences between candidates carry none of the
//! sampling noise a fresh draw of timesteps and noise would add; validation loss tracks sample
//! quality at equal data and schedule (Esser et al. 2024, SD3, arXiv 2403.03206).

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use unas_space::rng::Rng;

use super::latent_cache::LatentCache;
use super::train::{normal, Prediction, Recipe};

/// The frozen validation items; see the module docs.
#[derive(Clone, Debug)]
pub struct ValidationSet {
    /// Held-out latents (scaled posterior means) `[items, c, h, w]`, row-major.
    x0: Vec<f32>,
    /// Their caption embeddings `[items, text_len, text_dim]`.
    context: Vec<f32>,
    /// Timestep of row `i * bands + j`: stratum `j` of `bands` equal bands of `[0, T)`.
    timesteps: Vec<usize>,
    /// Noise of each row, `[items * bands, c, h, w]`.
    noise: Vec<f32>,
    items: usize,
    bands: usize,
    latent: [usize; 3],
    text: [usize; 2],
    seed: u64,
}

/// A validation loss: overall and per timestep band (band `j` covers timesteps
/// `[j·T/bands, (j+1)·T/bands)`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ValLoss {
    /// Mean weighted loss over all rows.
    pub overall: f64,
    /// Mean weighted loss of each band, low timesteps (little noise) first.
    pub bands: Vec<f64>,
}

impl ValidationSet {
    /// The items `indices` of `cache` (their posterior means, scaled by the cache's factor),
    /// each at one timestep drawn uniformly inside each of `bands` equal bands of the
    /// `timesteps`-step schedule, with standard normal noise; all drawn from `seed`.
    pub fn new(
        cache: &LatentCache,
        indices: &[usize],
        bands: usize,
        timesteps: usize,
        seed: u64,
    ) -> Self {
        let (l, t) = (cache.latent_len(), cache.text_len());
        let sf = cache.manifest.scaling_factor as f32;
        let mut x0 = Vec::with_capacity(indices.len() * l);
        let mut context = Vec::with_capacity(indices.len() * t);
        for &i in indices {
            x0.extend(cache.mean[i * l..][..l].iter().map(|v| v * sf));
            context.extend_from_slice(&cache.context[i * t..][..t]);
        }
        let mut rng = Rng::seed(seed ^ 0x7661_6c69_6400);
        let mut ts = Vec::with_capacity(indices.len() * bands);
        for _ in indices {
            for j in 0..bands {
                let (lo, hi) = (j * timesteps / bands, (j + 1) * timesteps / bands);
                ts.push(lo + rng.below((hi - lo).max(1)));
            }
        }
        let noise = normal(&mut rng, indices.len() * bands * l);
        Self {
            x0,
            context,
            timesteps: ts,
            noise,
            items: indices.len(),
            bands,
            latent: cache.manifest.latent,
            text: cache.manifest.text,
            seed,
        }
    }

    /// Held-out latents.
    pub fn items(&self) -> usize {
        self.items
    }

    /// Timestep bands per latent.
    pub fn bands(&self) -> usize {
        self.bands
    }

    /// `val-loss[N latents x B bands, seed S]`, for labels.
    pub fn label(&self) -> String {
        format!(
            "val-loss[{} held-out latents x {} timestep bands, fixed noise, seed {}]",
            self.items, self.bands, self.seed
        )
    }

    /// The loss of a denoiser `forward(x_t, t, context) -> prediction` under `recipe`, in
    /// chunks of `batch` rows. Reductions are done on the host in f64 in a fixed order, so
    /// the result does not depend on `batch` beyond the forward's own arithmetic.
    ///
    /// - `forward` inputs: `[n, c, h, w]`, `[n]`, `[n, text_len, text_dim]`; output `[n, c, h, w]`
    pub fn loss<B: Backend>(
        &self,
        recipe: &Recipe,
        batch: usize,
        device: &B::Device,
        forward: &dyn Fn(Tensor<B, 4>, Tensor<B, 1>, Tensor<B, 3>) -> Tensor<B, 4>,
    ) -> ValLoss {
        let acp = recipe.alphas_cumprod();
        let [c, h, w] = self.latent;
        let [tl, td] = self.text;
        let (l, t) = (c * h * w, tl * td);
        let rows = self.items * self.bands;
        let mut per_row = vec![0f64; rows];
        let batch = batch.max(1);
        for start in (0..rows).step_by(batch) {
            let n = batch.min(rows - start);
            let mut xt = Vec::with_capacity(n * l);
            let mut target = Vec::with_capacity(n * l);
            let mut ctx = Vec::with_capacity(n * t);
            let mut tsv = Vec::with_capacity(n);
            for r in start..start + n {
                let item = r / self.bands;
                let ts = self.timesteps[r];
                let a = acp[ts];
                let (sa, s1a) = (a.sqrt() as f32, (1.0 - a).sqrt() as f32);
                let x0 = &self.x0[item * l..][..l];
                let eps = &self.noise[r * l..][..l];
                xt.extend(x0.iter().zip(eps).map(|(x, e)| sa * x + s1a * e));
                target.extend(x0.iter().zip(eps).map(|(x, e)| match recipe.prediction {
                    Prediction::Epsilon => *e,
                    Prediction::V => sa * e - s1a * x,
                }));
                ctx.extend_from_slice(&self.context[item * t..][..t]);
                tsv.push(ts as f32);
            }
            let pred = forward(
                Tensor::from_data(TensorData::new(xt, [n, c, h, w]), device),
                Tensor::from_data(TensorData::new(tsv, [n]), device),
                Tensor::from_data(TensorData::new(ctx, [n, tl, td]), device),
            );
            let pred = pred
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 prediction");
            for k in 0..n {
                let r = start + k;
                let mse = pred[k * l..][..l]
                    .iter()
                    .zip(&target[k * l..][..l])
                    .map(|(p, q)| {
                        let d = (*p - *q) as f64;
                        d * d
                    })
                    .sum::<f64>()
                    / l as f64;
                per_row[r] = mse * recipe.loss_weight(acp[self.timesteps[r]]);
            }
        }
        let overall = per_row.iter().sum::<f64>() / rows.max(1) as f64;
        let bands = (0..self.bands)
            .map(|j| {
                let v: Vec<f64> = (0..self.items)
                    .map(|i| per_row[i * self.bands + j])
                    .collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            })
            .collect();
        ValLoss { overall, bands }
    }
}
