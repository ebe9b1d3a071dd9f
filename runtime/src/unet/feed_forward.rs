//! `FeedForward` with a GEGLU activation (diffusers' default for Stable Diffusion).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::error::RuntimeError;
use crate::ops::{geglu, linear};
use crate::weights::{join, LoadWeights, Weights};

/// Configuration of a [`FeedForward`].
#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    /// Input and output width.
    pub dim: usize,
    /// Hidden width as a multiple of `dim`. Default: 4.
    #[config(default = 4)]
    pub mult: usize,
}

impl FeedForwardConfig {
    /// Builds the module with random weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> FeedForward<B> {
        let inner = self.dim * self.mult;
        FeedForward {
            proj: LinearConfig::new(self.dim, 2 * inner).init(device),
            out: LinearConfig::new(inner, self.dim).init(device),
        }
    }
}

/// `proj` (`ff.net.0.proj`, dim → 2·inner) split into hidden and gate, hidden · GELU(gate)
/// (exact erf GELU), then `out` (`ff.net.2`, inner → dim).
#[derive(Module, Debug)]
pub struct FeedForward<B: Backend> {
    /// GEGLU input projection (`net.0.proj`).
    pub proj: Linear<B>,
    /// Output projection (`net.2`).
    pub out: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    /// - x: `[batch, n, dim]` → `[batch, n, dim]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        linear(&self.out, geglu(linear(&self.proj, x)))
    }
}

impl<B: Backend> LoadWeights<B> for FeedForward<B> {
    fn load_weights(
        &mut self,
        weights: &mut Weights,
        prefix: &str,
        device: &B::Device,
    ) -> Result<(), RuntimeError> {
        self.proj
            .load_weights(weights, &join(prefix, "net.0.proj"), device)?;
        self.out
            .load_weights(weights, &join(prefix, "net.2"), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Cpu;

    #[test]
    fn keeps_the_width() {
        let device = Default::default();
        let m = FeedForwardConfig::new(8).init::<Cpu>(&device);
        assert_eq!(m.proj.weight.dims(), [8, 64], "GEGLU: two halves of 4 x 8");
        let x = Tensor::<Cpu, 3>::ones([2, 5, 8], &device);
        assert_eq!(m.forward(x).dims(), [2, 5, 8]);
    }
}
