//! What the proxy sees: trains ARCH for STEPS with seed SEED (from the cached teacher when one
//! is named), samples 32 of the proxy's fixed prompts and writes them (top two rows) above 32
//! real built-in images (bottom two rows) as one PNG. Used for docs/quality-calibration.md.
//!
//! Usage: `cargo run --release -p unas-evaluator --example sample_grid -- CACHE_DIR ARCH STEPS
//! SEED OUT.png [TEACHER TEACHER_STEPS]`

use unas_evaluator::quality::proxy::{open_dataset, Proxy, ProxyConfig};

const SIDE: u32 = 32;

fn paste(grid: &mut image::RgbImage, pixels: &[f32], k: u32, row0: u32) {
    let (ox, oy) = ((k % 16) * SIDE, (row0 + k / 16) * SIDE);
    for y in 0..SIDE {
        for x in 0..SIDE {
            let at = |c: u32| (pixels[(c * SIDE * SIDE + y * SIDE + x) as usize] * 255.0) as u8;
            grid.put_pixel(ox + x, oy + y, image::Rgb([at(0), at(1), at(2)]));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 5 && a.len() != 7 {
        return Err("usage: sample_grid CACHE_DIR ARCH STEPS SEED OUT.png [TEACHER STEPS]".into());
    }
    let cfg = ProxyConfig {
        cache_dir: Some(a[0].clone().into()),
        teacher: a.get(5).cloned(),
        teacher_steps: a.get(6).map_or(Ok(1000), |s| s.parse())?,
        samples: 32,
        image_size: SIDE as usize,
        ..ProxyConfig::default()
    };
    let arch = unas_space::load_arch(&a[1])?;
    let proxy = Proxy::prepare(&cfg, arch.stem.cross_attention_dim, &mut |l| {
        eprintln!("{l}")
    })?;
    let (unet, loss) = proxy.train(&arch, a[3].parse()?, a[2].parse()?, &mut |_, _| {})?;
    eprintln!("final training loss {loss:.4}");
    let generated = proxy.sample(&unet, cfg.sampling_steps)?;
    let ds = open_dataset(&cfg.data, cfg.image_size, cfg.data_seed)?;
    let mut grid = image::RgbImage::new(SIDE * 16, SIDE * 4);
    for (k, im) in generated.iter().enumerate() {
        paste(&mut grid, im, k as u32, 0);
    }
    for k in 0..32u32 {
        paste(&mut grid, &ds.get(cfg.images + k as usize)?.pixels, k, 2);
    }
    grid.save(&a[4])?;
    Ok(())
}
