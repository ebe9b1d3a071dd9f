//! Captioned image datasets behind one trait: the built-in procedural shapes, Fashion-MNIST from
//! Debian's `dataset-fashion-mnist`, and a user folder of images with captions. Every dataset
//! yields RGB images as `[3, size, size]` f32 in [0, 1] with a caption and, where the dataset
//! has them, attribute labels (used to train the feature extractor and to score prompt
//! adherence).

pub mod fashion_mnist;
pub mod folder;
pub mod shapes;

use crate::EvalError;

/// One labelled attribute of a dataset (e.g. `shape` with classes circle, square, triangle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Class names, index = label.
    pub classes: Vec<String>,
}

/// One captioned image.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// `[3, size, size]` values in [0, 1], channel-major.
    pub pixels: Vec<f32>,
    /// The caption.
    pub caption: String,
    /// One label per [`Dataset::attributes`] entry (empty when the dataset has none).
    pub labels: Vec<usize>,
}

/// A captioned image dataset.
pub trait Dataset: Send + Sync {
    /// Name with its parameters (`shapes(seed 0, 32 px)`), used to label metrics and caches.
    fn name(&self) -> String;
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image side in pixels.
    fn size(&self) -> usize;
    /// Labelled attributes (may be empty).
    fn attributes(&self) -> &[Attribute];
    /// Sample `i` (< `len`).
    fn get(&self, i: usize) -> Result<Sample, EvalError>;
}
