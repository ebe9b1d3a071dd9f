//! What `unas train` shows of a run: its loss curve and a grid of its samples.

use std::path::{Path, PathBuf};

use crate::{plots, write, ReportError};

/// Writes `dir/loss.svg` and `dir/loss.png`: every step's loss and a trailing mean, on a log
/// scale. Returns the two files.
pub fn write_loss_curve(
    dir: &Path,
    losses: &[f32],
    title: &str,
) -> Result<Vec<PathBuf>, ReportError> {
    let plot = plots::loss_curve(losses, title).map_err(|message| ReportError::Plot {
        file: dir.join("loss.svg"),
        message,
    })?;
    let (svg, png) = (dir.join("loss.svg"), dir.join("loss.png"));
    write(&svg, plot.svg.as_bytes())?;
    write(&png, &plot.png)?;
    Ok(vec![svg, png])
}

/// A PNG of `images` (each `[3, size, size]`, channel-major, values in [0, 1]) in rows of
/// `cols`, 2 pixels of white between them, each image scaled up `zoom` times (nearest
/// neighbour).
pub fn image_grid_png(
    images: &[Vec<f32>],
    size: usize,
    cols: usize,
    zoom: usize,
) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let (cols, zoom) = (cols.max(1), zoom.max(1));
    if let Some(bad) = images.iter().position(|im| im.len() != 3 * size * size) {
        return Err(format!(
            "image {bad} has {} values, not 3 x {size} x {size}",
            images[bad].len()
        ));
    }
    let rows = images.len().div_ceil(cols).max(1);
    let cell = size * zoom + 2;
    let (w, h) = (cols * cell + 2, rows * cell + 2);
    let mut rgb = vec![255u8; w * h * 3];
    for (n, im) in images.iter().enumerate() {
        let (x0, y0) = ((n % cols) * cell + 2, (n / cols) * cell + 2);
        for y in 0..size * zoom {
            for x in 0..size * zoom {
                let (sy, sx) = (y / zoom, x / zoom);
                let o = ((y0 + y) * w + x0 + x) * 3;
                for c in 0..3 {
                    let v = im[c * size * size + sy * size + sx];
                    rgb[o + c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_curve_is_written_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let losses: Vec<f32> = (0..200).map(|i| 1.0 / (1.0 + i as f32 * 0.1)).collect();
        let files = write_loss_curve(dir.path(), &losses, "test run").unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("test run"),
            "{svg:.200}"
        );
        let png = image::load_from_memory(&std::fs::read(&files[1]).unwrap())
            .unwrap()
            .to_rgb8();
        assert_eq!((png.width(), png.height()), (800, 420));
        // Not blank: the curves are drawn in colour on white.
        assert!(png.pixels().any(|p| p.0 == [40, 90, 200]));
    }

    #[test]
    fn the_grid_places_each_image_in_its_cell() {
        // Two 2x2 images: all red, all blue; one row.
        let red = [vec![1.0; 4], vec![0.0; 4], vec![0.0; 4]].concat();
        let blue = [vec![0.0; 4], vec![0.0; 4], vec![1.0; 4]].concat();
        let png = image_grid_png(&[red, blue], 2, 2, 3).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_rgb8();
        // 2 cells of 2*3 + 2 pixels, plus the outer border.
        assert_eq!((img.width(), img.height()), (2 * 8 + 2, 8 + 2));
        assert_eq!(img.get_pixel(2, 2).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(2 + 8, 2 + 5).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
        assert!(image_grid_png(&[vec![0.0; 5]], 2, 1, 1).is_err());
    }
}
