//! Proxy image quality: datasets, feature statistics and distribution distances.

pub mod data;
pub mod features;
pub mod metrics;
pub mod train;
