//! unas-runtime: the burn implementation of unas U-Nets.
//!
//! - [`UNet2DConditionModel`] is built from any valid [`unas_space::UNetArch`] by walking its
//!   [`unas_space::Plan`] (diffusers' SD1.5 layout, DeciDiffusion's flexible layout, any block
//!   order), loads diffusers safetensors weights ([`weights`]) and saves them ([`save`]).
//! - [`nn`] holds the layers the U-Net, the VAE and the text encoder share.
//! - [`device`] picks a backend: burn's Flex CPU backend, or CUDA with the `cuda` feature.
//! - [`bench`] times the U-Net's forward pass.
//! - [`text`] (CLIP BPE tokenizer and text transformer), [`vae`] (AutoencoderKL),
//!   [`scheduler`] (DDIM, Euler, DPM-Solver++) and [`pipeline`] (text-to-image over a diffusers
//!   model folder) make up the generation pipeline.

pub mod bench;
pub mod device;
pub mod error;
pub mod nn;
pub mod ops;
pub mod pipeline;
pub mod save;
pub mod scheduler;
pub mod text;
pub mod unet;
pub mod vae;
pub mod weights;

pub use error::RuntimeError;
pub use unet::{InheritStats, RoleWeights, SubNet, UNet2DConditionModel, UNetBlock};
pub use weights::{LoadWeights, Weights};
