//! Stable Diffusion's variational autoencoder (diffusers' `AutoencoderKL`), one module per
//! file with diffusers' names.

pub mod autoencoder_kl;
pub mod coder_block;
pub mod mid_block;

pub use autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
