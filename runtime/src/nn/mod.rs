//! Layers shared by the U-Net, the VAE and the text encoder (diffusers keeps them flat in
//! `models/`: `resnet.py`, `downsampling.py`, `upsampling.py`, `attention_processor.py`), one
//! module per file, all running through [`crate::ops`] (the fused CPU kernels).

pub mod attention;
pub mod downsample;
pub mod resnet;
pub mod upsample;

pub use attention::{Attention, AttentionConfig};
pub use downsample::{Downsample2D, Downsample2DConfig};
pub use resnet::{ResnetBlock2D, ResnetBlock2DConfig};
pub use upsample::{Upsample2D, Upsample2DConfig};
