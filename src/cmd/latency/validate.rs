//! `unas latency validate`: a lookup table's predictions against end-to-end measurements of
//! sampled architectures.

#[allow(unused_imports)]
use super::*;

#[derive(Args)]
pub(super) struct ValidateArgs {
    /// Search space: preset or TOML file.
    #[arg(long)]
    pub(super) space: String,
    /// Lookup table from `unas profile`.
    #[arg(long)]
    pub(super) lut: PathBuf,
    /// Random architectures to measure.
    #[arg(short = 'n', long, default_value_t = 40)]
    pub(super) count: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// Untimed runs before measuring each architecture.
    #[arg(long, default_value_t = 2)]
    pub(super) warmup: usize,
    /// Timed runs per architecture.
    #[arg(long, default_value_t = 9)]
    pub(super) repeats: usize,
}

pub(super) fn validate(a: ValidateArgs) -> CmdResult {
    let space = SearchSpace::load(&a.space)?;
    let table = LookupTable::load(&a.lut).map_err(eval_err)?;
    let setting = table.setting;
    let measured = MeasuredModel {
        device: Device::Cpu,
        repeats: Repeats {
            warmup: a.warmup,
            repeats: a.repeats,
        },
        breakdown: false,
    };
    let mut rng = Rng::seed(a.seed);
    let pb = bar(a.count, "measuring");
    let mut rows = Vec::with_capacity(a.count);
    for _ in 0..a.count {
        let arch = space.decode(&space.sample(&mut rng)?);
        let pred = table.predict(&arch, &setting).map_err(eval_err)?;
        let real = measured.predict(&arch, &setting).map_err(eval_err)?;
        pb.inc(1);
        if pb.is_hidden() {
            eprintln!(
                "arch {}/{} {}: table {:.3} ms, measured {:.3} ms",
                rows.len() + 1,
                a.count,
                arch.hash_id(),
                pred.total_ms,
                real.total_ms
            );
        }
        rows.push((arch.hash_id(), pred.total_ms, real.total_ms, real.iqr_ms));
    }
    pb.finish_and_clear();
    println!(
        "lookup table {} ({}, {}) vs end-to-end measurement, {} archs of space `{}` (seed {})",
        a.lut.display(),
        table.measured.device,
        table.measured.date,
        a.count,
        space.name,
        a.seed
    );
    println!(
        "setting: latent {0}x{0}, batch {1}, {2} tokens, {3}; overhead {4:.3} ms",
        setting.latent,
        setting.batch,
        setting.text_len,
        setting.dtype.name(),
        table.overhead_ms
    );
    println!();
    println!(
        "{:<18} {:>12} {:>12} {:>9} {:>9}",
        "arch", "predicted", "measured", "IQR", "error"
    );
    for (id, p, m, iqr) in &rows {
        println!(
            "{id:<18} {p:>9.2} ms {m:>9.2} ms {:>6.2} ms {:>+8.1}%",
            iqr.unwrap_or(0.0),
            100.0 * (p - m) / m
        );
    }
    let n = rows.len().max(1) as f64;
    let rmse = (rows.iter().map(|r| (r.1 - r.2).powi(2)).sum::<f64>() / n).sqrt();
    let rmspe = (rows
        .iter()
        .map(|r| ((r.1 - r.2) / r.2).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let within = |pct: f64| {
        100.0
            * rows
                .iter()
                .filter(|r| ((r.1 - r.2) / r.2).abs() <= pct / 100.0)
                .count() as f64
            / n
    };
    println!();
    println!("RMSE   {rmse:.3} ms");
    println!("RMSPE  {:.2} %", 100.0 * rmspe);
    println!(
        "within ±5 %: {:.1} %   ±10 %: {:.1} %   ±15 %: {:.1} %",
        within(5.0),
        within(10.0),
        within(15.0)
    );
    Ok(())
}
