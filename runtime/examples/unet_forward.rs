//! One U-Net forward pass with random weights on the CPU, for time and peak-memory checks:
//!
//! ```text
//! cargo run --release -p unas-runtime --example unet_forward -- sd15 64 2
//! /usr/bin/time -v target/release/examples/unet_forward decidiffusion 64 2
//! ```
//!
//! Arguments: architecture (preset name or .toml), latent size (64), batch (2), and optionally
//! `--profile` to time each module kind.

use unas_runtime::bench::{bench_unet, profile_unet, BenchConfig};
use unas_runtime::device::Cpu;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arch_spec = args.first().map_or("sd15", String::as_str);
    let latent = args.get(1).map_or(64, |s| s.parse().expect("latent size"));
    let batch = args.get(2).map_or(2, |s| s.parse().expect("batch"));
    let profile = args.iter().any(|a| a == "--profile");
    let arch = unas_space::load_arch(arch_spec).unwrap_or_else(|e| panic!("{e}"));
    let cfg = BenchConfig {
        latent,
        batch,
        text_len: 77,
        warmup: 0,
        repeats: 1,
    };
    let device = Default::default();
    if profile {
        let kinds = profile_unet::<Cpu>(&arch, &cfg, &device, &mut |_| {}).unwrap();
        let total: f64 = kinds.iter().map(|k| k.median_ms).sum();
        for k in kinds {
            println!(
                "{:<16} {:>4} runs {:>10.1} ms {:>5.1}%",
                k.kind,
                k.runs,
                k.median_ms,
                100.0 * k.median_ms / total
            );
        }
        println!("total {total:.1} ms");
        return;
    }
    let report = bench_unet::<Cpu>(&arch, &cfg, &device, &mut |_| {}).unwrap();
    println!(
        "{arch_spec}: {} params, latent {latent}x{latent}, batch {batch}: build {:.0} ms, forward {:.0} ms",
        report.params, report.build_ms, report.forward.median_ms
    );
}
