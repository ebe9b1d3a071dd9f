//! The noise floor of the proxy's estimator: FD and KID of five disjoint sets of REAL
//! built-in images against the proxy's real reference, at each sample count given (no model
//! is trained). Used for docs/quality-calibration.md.
//!
//! Usage: `cargo run --release -p unas-evaluator --example fd_floor -- CACHE_DIR 128 512`

use unas_evaluator::quality::proxy::{open_dataset, Proxy, ProxyConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cache, counts)) = args.split_first() else {
        return Err("usage: fd_floor CACHE_DIR N [N…]".into());
    };
    let cfg = ProxyConfig {
        cache_dir: Some(cache.into()),
        ..ProxyConfig::default()
    };
    let proxy = Proxy::prepare(&cfg, 64, &mut |l| eprintln!("{l}"))?;
    let ds = open_dataset(&cfg.data, cfg.image_size, cfg.data_seed)?;
    for n in counts {
        let n: usize = n.parse()?;
        let mut fds = Vec::new();
        for k in 0..5 {
            // Images past the reference's `images`, disjoint between sets.
            let start = cfg.images + k * n;
            let real = (start..start + n)
                .map(|i| ds.get(i).map(|s| s.pixels))
                .collect::<Result<Vec<_>, _>>()?;
            let (fd, kid, _) = proxy.score(&real)?;
            println!("n {n} set {k}: fd {fd:.1} kid {:.1}", kid.mean);
            fds.push(fd);
        }
        let mean = fds.iter().sum::<f64>() / fds.len() as f64;
        let var = fds.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / (fds.len() - 1) as f64;
        println!("n {n}: FD mean {mean:.1}, sd {:.1}", var.sqrt());
    }
    Ok(())
}
