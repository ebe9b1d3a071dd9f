//! The U-Net and its building blocks, one module per file, named and shaped like diffusers'
//! classes so that weight keys map one to one.

pub mod basic_transformer_block;
pub mod conv_out;
pub mod feed_forward;
pub mod inherit;
pub mod model;
pub mod supernet;
pub mod time_embedding;
pub mod transformer_2d;

pub use inherit::{InheritStats, RoleWeights};
pub use model::{UNet2DConditionModel, UNetBlock};
pub use supernet::SubNet;
