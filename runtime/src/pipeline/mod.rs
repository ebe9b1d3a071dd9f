//! The text-to-image pipeline over a diffusers model folder: prompt → CLIP → denoising loop
//! (U-Net + scheduler, classifier-free guidance) → VAE → PNG.

pub mod model_dir;
pub mod model_index;
pub mod png;
pub mod run;
pub mod stable_diffusion;

pub use model_dir::ModelDir;
pub use model_index::model_index;
pub use png::{save_png, RgbImage};
pub use run::{generate_on, generate_with, GenerateOutput, GenerateRequest};
pub use stable_diffusion::{
    denoise, read_noise, read_unet_arch, save_latents, seeded_noise, to_rgb8, GenerateParams,
    Generated, Guidance, StableDiffusion,
};
