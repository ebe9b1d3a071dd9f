//! Times `AutoencoderKL::decode` at the proxy's small-VAE shape (block widths 16 / 32, one
//! ResNet per block, 8 norm groups: 4x16x16 latents to 32 px images) on the CPU:
//!
//! ```text
//! cargo run --release -p unas-runtime --example vae_decode -- 64 7
//! ```
//!
//! Arguments: batch (64) and timed repeats (7; one warm-up before them). Prints each repeat
//! and the median in milliseconds. Compare two builds by running their binaries alternately.

use std::time::Instant;

use burn::tensor::{Distribution, Tensor};
use unas_runtime::device::Cpu;
use unas_runtime::vae::AutoencoderKLConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch: usize = args.first().map_or(64, |s| s.parse().expect("batch"));
    let repeats: usize = args.get(1).map_or(7, |s| s.parse().expect("repeats"));
    let device = Default::default();
    let vae = AutoencoderKLConfig::new()
        .with_block_out_channels(vec![16, 32])
        .with_layers_per_block(1)
        .with_norm_num_groups(8)
        .init::<Cpu>(&device);
    let latents =
        Tensor::<Cpu, 4>::random([batch, 4, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let _ = vae.decode(latents.clone()).into_data();
    let mut ms: Vec<f64> = (0..repeats)
        .map(|_| {
            let t0 = Instant::now();
            let _ = vae.decode(latents.clone()).into_data();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!(
        "repeats (ms): {}",
        ms.iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    ms.sort_by(f64::total_cmp);
    println!(
        "vae decode, batch {batch}, 4x16x16 -> 3x32x32: median {:.1} ms",
        ms[ms.len() / 2]
    );
}
