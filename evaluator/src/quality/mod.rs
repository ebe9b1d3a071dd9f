//! Proxy image quality: datasets, the small VAE and text encoder of the CPU path, the latent
//! cache, candidate training, feature statistics and distribution distances, and the
//! end-to-end proxy evaluation.

pub mod bench_train;
pub mod calibration;
pub mod caption_encoder;
pub mod checkpoint;
pub mod covering_init;
pub mod data;
pub mod features;
pub mod hash;
pub mod inception;
pub mod latent_cache;
pub mod metrics;
pub mod module_file;
pub mod paired;
pub mod pipeline_data;
pub mod proxy;
pub mod recipe_study;
mod run_state;
pub mod small_vae;
pub mod supernet;
pub mod supernet_panel;
pub mod supernet_scorer;
pub mod supernet_store;
pub mod train;
pub mod train_model;
pub mod val_loss;
