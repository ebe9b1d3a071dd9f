//! `TimestepEmbedding`: sinusoidal projection of the timestep, then linear → SiLU → linear.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`TimestepEmbedding`].
#[derive(Config, Debug)]
pub struct TimestepEmbeddingConfig {
    /// Size of the sinusoidal projection (diffusers: `block_out_channels[0]`, 320 in SD1.5).
    pub proj_dim: usize,
    /// Output width (1280 in SD1.5).
    pub embed_dim: usize,
    /// Cosine half first. Default: true (SD1.5).
    #[config(default = true)]
    pub flip_sin_to_cos: bool,
    /// diffusers' `downscale_freq_shift` (`freq_shift` in the config). Default: 0.
    #[config(default = 0.0)]
    pub freq_shift: f64,
}

impl TimestepEmbeddingConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> TimestepEmbedding<B> {
        TimestepEmbedding {
            linear_1: LinearConfig::new(self.proj_dim, self.embed_dim).init(device),
            linear_2: LinearConfig::new(self.embed_dim, self.embed_dim).init(device),
            proj_dim: self.proj_dim,
            flip_sin_to_cos: self.flip_sin_to_cos,
            freq_shift: self.freq_shift,
        }
    }
}

/// diffusers' `Timesteps` + `TimestepEmbedding` (weight keys `time_embedding.linear_{1,2}`).
#[derive(Module, Debug)]
pub struct TimestepEmbedding<B: Backend> {
    /// Projection → embedding width.
    pub linear_1: Linear<B>,
    /// Embedding → embedding width.
    pub linear_2: Linear<B>,
    proj_dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
}

impl<B: Backend> TimestepEmbedding<B> {
    /// Sinusoidal projection, as diffusers' `get_timestep_embedding`.
    ///
    /// - timesteps: `[batch]` → `[batch, proj_dim]`
    pub fn project(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        let device = timesteps.device();
        let [batch] = timesteps.dims();
        let half = self.proj_dim / 2;
        // exponent = -ln(10000) * arange(half) / (half - shift), computed in f32 like torch.
        let denom = (half as f64 - self.freq_shift) as f32;
        let freqs: Vec<f32> = (0..half)
            .map(|i| (-(10000f32.ln()) * i as f32 / denom).exp())
            .collect();
        let freqs = Tensor::<B, 1>::from_floats(freqs.as_slice(), &device).reshape([1, half]);
        let args = timesteps.reshape([batch, 1]) * freqs;
        let (sin, cos) = (args.clone().sin(), args.cos());
        let mut emb = if self.flip_sin_to_cos {
            Tensor::cat(vec![cos, sin], 1)
        } else {
            Tensor::cat(vec![sin, cos], 1)
        };
        if self.proj_dim % 2 == 1 {
            emb = emb.pad((0, 1, 0, 0), burn::tensor::ops::PadMode::Constant(0.0));
        }
        emb
    }

    /// - timesteps: `[batch]` (float timesteps, e.g. 0..999)
    /// - output: `[batch, embed_dim]`
    pub fn forward(&self, timesteps: Tensor<B, 1>) -> Tensor<B, 2> {
        let x = self.linear_1.forward(self.project(timesteps));
        self.linear_2.forward(silu(x))
    }
}

impl<B: Backend> LoadWeights<B> for TimestepEmbedding<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.linear_1
            .load_weights(weights, &join(prefix, "linear_1"), device)?;
        self.linear_2
            .load_weights(weights, &join(prefix, "linear_2"), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn one_embedding_per_timestep() {
        let device = Default::default();
        let m = TimestepEmbeddingConfig::new(8, 16).init::<Cpu>(&device);
        let t = Tensor::<Cpu, 1>::from_floats([0.0, 500.0, 999.0], &device);
        assert_eq!(m.forward(t).dims(), [3, 16]);
    }
}
