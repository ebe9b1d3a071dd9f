//! unas-evaluator: scores candidate U-Nets.
//!
//! - [`latency`]: the [`latency::LatencyModel`] trait and its implementations: measured on the
//!   device at hand, per-block lookup tables, and roofline device profiles for GPUs one does not
//!   have (A10, A10G, H100 in `configs/devices/`), calibrated against published figures.
//! - [`quality`]: captioned datasets (procedural shapes, Fashion-MNIST, image folders) and
//!   distribution distances (Fréchet distance, KID).

pub mod clock;
pub mod error;
pub mod latency;
pub mod quality;

pub use error::EvalError;
