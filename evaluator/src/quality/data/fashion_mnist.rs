//! Fashion-MNIST from Debian's `dataset-fashion-mnist` package (idx.gz files under
//! `/usr/share/datasets/fashion-mnist/`): 28x28 grey images padded to 32x32 and replicated to
//! RGB, captioned "a photo of a {class}" with the ten class names.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Attribute, Dataset, Sample};
use crate::EvalError;

/// Where Debian installs the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The ten class names, label order.
pub const CLASSES: [&str; 10] = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];

/// Fashion-MNIST, one split, images padded to `size` (>= 28).
#[derive(Clone, Debug)]
pub struct FashionMnist {
    images: Vec<u8>,
    labels: Vec<u8>,
    size: usize,
    split: &'static str,
    attributes: Vec<Attribute>,
}

fn read_gz(path: &Path) -> Result<Vec<u8>, EvalError> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::File {
        file: path.to_path_buf(),
        message: format!(
            "{e} (install Debian's dataset-fashion-mnist, or pass the folder holding the idx.gz files)"
        ),
    })?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .map_err(|e| EvalError::File {
            file: path.to_path_buf(),
            message: format!("not a gzip idx file: {e}"),
        })?;
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

impl FashionMnist {
    /// Loads the `train` (60,000) or `test` (10,000) split from `dir`.
    pub fn load(dir: &Path, train: bool, size: usize) -> Result<Self, EvalError> {
        if size < 28 {
            return Err(EvalError::Unsupported(format!(
                "Fashion-MNIST images are 28x28; size {size} would crop them"
            )));
        }
        let prefix = if train { "train" } else { "t10k" };
        let img_path: PathBuf = dir.join(format!("{prefix}-images-idx3-ubyte.gz"));
        let lab_path: PathBuf = dir.join(format!("{prefix}-labels-idx1-ubyte.gz"));
        let img = read_gz(&img_path)?;
        let lab = read_gz(&lab_path)?;
        let bad = |p: &Path, m: &str| EvalError::File {
            file: p.to_path_buf(),
            message: m.to_string(),
        };
        if img.len() < 16 || be_u32(&img, 0) != 0x0803 {
            return Err(bad(&img_path, "not an idx3 image file (magic 0x00000803)"));
        }
        if lab.len() < 8 || be_u32(&lab, 0) != 0x0801 {
            return Err(bad(&lab_path, "not an idx1 label file (magic 0x00000801)"));
        }
        let (n, rows, cols) = (be_u32(&img, 4), be_u32(&img, 8), be_u32(&img, 12));
        if rows != 28 || cols != 28 || img.len() != 16 + n * 784 {
            return Err(bad(
                &img_path,
                "expected 28x28 images and a matching length",
            ));
        }
        if be_u32(&lab, 4) != n || lab.len() != 8 + n {
            return Err(bad(&lab_path, "label count differs from image count"));
        }
        if lab[8..].iter().any(|&l| l >= 10) {
            return Err(bad(&lab_path, "labels must be 0..9"));
        }
        Ok(Self {
            images: img[16..].to_vec(),
            labels: lab[8..].to_vec(),
            size,
            split: if train { "train" } else { "test" },
            attributes: vec![Attribute {
                name: "class".into(),
                classes: CLASSES.iter().map(|c| c.to_string()).collect(),
            }],
        })
    }

    /// The caption of a class.
    pub fn caption(class: usize) -> String {
        format!("a photo of a {}", CLASSES[class])
    }
}

impl Dataset for FashionMnist {
    fn name(&self) -> String {
        format!("fashion-mnist({}, {} px)", self.split, self.size)
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn size(&self) -> usize {
        self.size
    }
    fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }
    fn get(&self, i: usize) -> Result<Sample, EvalError> {
        if i >= self.len() {
            return Err(EvalError::Unsupported(format!(
                "sample {i} of a {}-sample dataset",
                self.len()
            )));
        }
        let n = self.size;
        let off = (n - 28) / 2;
        let src = &self.images[i * 784..(i + 1) * 784];
        let mut grey = vec![0.0f32; n * n];
        for y in 0..28 {
            for x in 0..28 {
                grey[(y + off) * n + x + off] = src[y * 28 + x] as f32 / 255.0;
            }
        }
        let mut pixels = Vec::with_capacity(3 * n * n);
        for _ in 0..3 {
            pixels.extend_from_slice(&grey);
        }
        let class = self.labels[i] as usize;
        Ok(Sample {
            pixels,
            caption: Self::caption(class),
            labels: vec![class],
        })
    }
}
