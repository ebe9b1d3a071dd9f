//! A user folder of images with captions: either a `.txt` beside each image (`cat.png` +
//! `cat.txt`) or a `captions.jsonl` with one `{"file": "...", "caption": "..."}` per line.
//! Images (PNG or JPEG) are centre-cropped to a square and resized to `size` (bilinear).

use std::path::{Path, PathBuf};

use super::{Attribute, Dataset, Sample};
use crate::EvalError;

/// A folder dataset (no attribute labels).
#[derive(Clone, Debug)]
pub struct ImageFolder {
    dir: PathBuf,
    items: Vec<(PathBuf, String)>,
    size: usize,
}

fn is_image(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg")
    )
}

impl ImageFolder {
    /// Lists the folder; every image needs a caption.
    pub fn open(dir: &Path, size: usize) -> Result<Self, EvalError> {
        let err = |file: &Path, message: String| EvalError::File {
            file: file.to_path_buf(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| err(dir, e.to_string()))?;
        let mut images: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_image(p))
            .collect();
        images.sort();
        let jsonl = dir.join("captions.jsonl");
        let mut items = Vec::with_capacity(images.len());
        if jsonl.exists() {
            let text = std::fs::read_to_string(&jsonl).map_err(|e| err(&jsonl, e.to_string()))?;
            for (n, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| err(&jsonl, format!("line {}: {e}", n + 1)))?;
                let (Some(file), Some(caption)) = (
                    v.get("file").and_then(|f| f.as_str()),
                    v.get("caption").and_then(|c| c.as_str()),
                ) else {
                    return Err(err(
                        &jsonl,
                        format!("line {}: needs string fields `file` and `caption`", n + 1),
                    ));
                };
                let path = dir.join(file);
                if !path.exists() {
                    return Err(err(
                        &jsonl,
                        format!("line {}: {} does not exist", n + 1, path.display()),
                    ));
                }
                items.push((path, caption.to_string()));
            }
        } else {
            for img in images {
                let txt = img.with_extension("txt");
                let caption = std::fs::read_to_string(&txt).map_err(|e| {
                    err(&txt, format!("caption for {} missing: {e}", img.display()))
                })?;
                items.push((img, caption.trim().to_string()));
            }
        }
        if items.is_empty() {
            return Err(err(dir, "no captioned PNG or JPEG images".into()));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            items,
            size,
        })
    }
}

impl Dataset for ImageFolder {
    fn name(&self) -> String {
        format!("folder({}, {} px)", self.dir.display(), self.size)
    }
    fn len(&self) -> usize {
        self.items.len()
    }
    fn size(&self) -> usize {
        self.size
    }
    fn attributes(&self) -> &[Attribute] {
        &[]
    }
    fn get(&self, i: usize) -> Result<Sample, EvalError> {
        let (path, caption) = self.items.get(i).ok_or_else(|| {
            EvalError::Unsupported(format!("sample {i} of a {}-sample dataset", self.len()))
        })?;
        let img = image::open(path).map_err(|e| EvalError::File {
            file: path.clone(),
            message: format!("cannot decode image: {e}"),
        })?;
        let rgb = img.to_rgb8();
        let (w, h) = rgb.dimensions();
        let side = w.min(h);
        let cropped =
            image::imageops::crop_imm(&rgb, (w - side) / 2, (h - side) / 2, side, side).to_image();
        let n = self.size as u32;
        let resized =
            image::imageops::resize(&cropped, n, n, image::imageops::FilterType::Triangle);
        let plane = (n * n) as usize;
        let mut pixels = vec![0.0f32; 3 * plane];
        for (idx, px) in resized.pixels().enumerate() {
            for c in 0..3 {
                pixels[c * plane + idx] = px[c] as f32 / 255.0;
            }
        }
        Ok(Sample {
            pixels,
            caption: caption.clone(),
            labels: Vec::new(),
        })
    }
}
