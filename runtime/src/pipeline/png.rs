//! Writing generated images as 8-bit RGB PNG files with `tEXt` metadata chunks.

use std::io::BufWriter;
use std::path::Path;

use crate::error::RuntimeError;

/// An 8-bit RGB image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height × width × 3` bytes.
    pub pixels: Vec<u8>,
}

/// Writes `image` to `path` with one `tEXt` chunk per `(keyword, text)` (keywords 1–79 Latin-1
/// characters; non-Latin-1 text is written as an `iTXt` chunk instead).
pub fn save_png(
    path: &Path,
    image: &RgbImage,
    text: &[(String, String)],
) -> Result<(), RuntimeError> {
    let io = |source: std::io::Error| RuntimeError::Io {
        file: path.to_path_buf(),
        source,
    };
    let enc_err = |e: png::EncodingError| RuntimeError::Io {
        file: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(
        BufWriter::new(file),
        image.width as u32,
        image.height as u32,
    );
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    for (k, v) in text {
        if v.chars().all(|c| (c as u32) < 256) {
            enc.add_text_chunk(k.clone(), v.clone()).map_err(enc_err)?;
        } else {
            enc.add_itxt_chunk(k.clone(), v.clone()).map_err(enc_err)?;
        }
    }
    let mut writer = enc.write_header().map_err(enc_err)?;
    writer.write_image_data(&image.pixels).map_err(enc_err)?;
    writer.finish().map_err(enc_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_text_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let image = RgbImage {
            width: 2,
            height: 1,
            pixels: vec![255, 0, 0, 0, 0, 255],
        };
        let text = vec![
            ("prompt".to_string(), "a cat".to_string()),
            ("negative_prompt".to_string(), "猫".to_string()),
        ];
        save_png(&path, &image, &text).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        assert_eq!(&buf[..6], &image.pixels[..]);
        let info = reader.info();
        assert_eq!(info.uncompressed_latin1_text[0].keyword, "prompt");
        assert_eq!(info.uncompressed_latin1_text[0].text, "a cat");
        assert_eq!(info.utf8_text[0].keyword, "negative_prompt");
    }
}
