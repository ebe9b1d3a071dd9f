//! The built-in procedural dataset: one coloured shape on a plain background, with varied
//! shape, colour, size, position and background, and a caption that says all of it ("a small
//! red circle in the top left on a black background"). Sample `i` is a pure function of
//! (seed, i): no files, the same images on every machine.

use super::{Attribute, Dataset, Sample};
use crate::EvalError;
use unas_space::rng::Rng;

const SHAPES: [&str; 4] = ["circle", "square", "triangle", "diamond"];
const COLOURS: [(&str, [f32; 3]); 6] = [
    ("red", [0.9, 0.1, 0.1]),
    ("green", [0.1, 0.75, 0.2]),
    ("blue", [0.15, 0.25, 0.95]),
    ("yellow", [0.95, 0.9, 0.1]),
    ("purple", [0.6, 0.15, 0.75]),
    ("orange", [1.0, 0.55, 0.05]),
];
const SIZES: [(&str, f32); 2] = [("small", 0.26), ("large", 0.44)];
const POSITIONS: [(&str, f32, f32); 5] = [
    ("top left", 0.3, 0.3),
    ("top right", 0.7, 0.3),
    ("center", 0.5, 0.5),
    ("bottom left", 0.3, 0.7),
    ("bottom right", 0.7, 0.7),
];
const BACKGROUNDS: [(&str, [f32; 3]); 3] = [
    ("black", [0.05, 0.05, 0.05]),
    ("white", [0.95, 0.95, 0.95]),
    ("grey", [0.5, 0.5, 0.5]),
];

/// The procedural shapes dataset.
#[derive(Clone, Debug)]
pub struct Shapes {
    seed: u64,
    len: usize,
    size: usize,
    attributes: Vec<Attribute>,
}

fn names<T>(items: &[T], f: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|x| f(x).to_string()).collect()
}

impl Shapes {
    /// `len` samples of `size` x `size` pixels from `seed`.
    pub fn new(seed: u64, len: usize, size: usize) -> Self {
        let attributes = vec![
            Attribute {
                name: "shape".into(),
                classes: names(&SHAPES, |s| s),
            },
            Attribute {
                name: "colour".into(),
                classes: names(&COLOURS, |c| c.0),
            },
            Attribute {
                name: "size".into(),
                classes: names(&SIZES, |s| s.0),
            },
            Attribute {
                name: "position".into(),
                classes: names(&POSITIONS, |p| p.0),
            },
            Attribute {
                name: "background".into(),
                classes: names(&BACKGROUNDS, |b| b.0),
            },
        ];
        Self {
            seed,
            len,
            size,
            attributes,
        }
    }

    /// The labels of sample `i`: (shape, colour, size, position, background).
    pub fn labels(&self, i: usize) -> [usize; 5] {
        let mut rng = Rng::seed(self.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut pick = |n: usize| rng.below(n);
        let shape = pick(SHAPES.len());
        let colour = pick(COLOURS.len());
        let size = pick(SIZES.len());
        let position = pick(POSITIONS.len());
        let background = pick(BACKGROUNDS.len());
        [shape, colour, size, position, background]
    }

    /// The caption of a label set.
    pub fn caption(labels: &[usize]) -> String {
        format!(
            "a {} {} {} in the {} on a {} background",
            SIZES[labels[2]].0,
            COLOURS[labels[1]].0,
            SHAPES[labels[0]],
            POSITIONS[labels[3]].0,
            BACKGROUNDS[labels[4]].0
        )
    }

    /// Renders a label set (4x4 supersampled edges).
    pub fn render(&self, labels: &[usize]) -> Vec<f32> {
        let n = self.size;
        let (_, cx, cy) = POSITIONS[labels[3]];
        let r = SIZES[labels[2]].1 * 0.5;
        let fg = COLOURS[labels[1]].1;
        let bg = BACKGROUNDS[labels[4]].1;
        let inside = |x: f32, y: f32| -> bool {
            let (dx, dy) = (x - cx, y - cy);
            match labels[0] {
                0 => dx * dx + dy * dy <= r * r,
                1 => dx.abs() <= r * 0.9 && dy.abs() <= r * 0.9,
                2 => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.6,
                _ => dx.abs() + dy.abs() <= r,
            }
        };
        let mut out = vec![0.0f32; 3 * n * n];
        const SS: usize = 4;
        for py in 0..n {
            for px in 0..n {
                let mut cover = 0usize;
                for sy in 0..SS {
                    for sx in 0..SS {
                        let x = (px as f32 + (sx as f32 + 0.5) / SS as f32) / n as f32;
                        let y = (py as f32 + (sy as f32 + 0.5) / SS as f32) / n as f32;
                        cover += usize::from(inside(x, y));
                    }
                }
                let a = cover as f32 / (SS * SS) as f32;
                for c in 0..3 {
                    out[c * n * n + py * n + px] = a * fg[c] + (1.0 - a) * bg[c];
                }
            }
        }
        out
    }
}

impl Dataset for Shapes {
    fn name(&self) -> String {
        format!(
            "shapes(seed {}, {} px, {} samples)",
            self.seed, self.size, self.len
        )
    }
    fn len(&self) -> usize {
        self.len
    }
    fn size(&self) -> usize {
        self.size
    }
    fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }
    fn get(&self, i: usize) -> Result<Sample, EvalError> {
        if i >= self.len {
            return Err(EvalError::Unsupported(format!(
                "sample {i} of a {}-sample dataset",
                self.len
            )));
        }
        let labels = self.labels(i);
        Ok(Sample {
            pixels: self.render(&labels),
            caption: Self::caption(&labels),
            labels: labels.to_vec(),
        })
    }
}
