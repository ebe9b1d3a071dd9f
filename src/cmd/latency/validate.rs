//! `unas latency validate`: a lookup table's predictions against end-to-end measurements of
//! sampled architectures.

#[allow(unused_imports)]
use super::*;
use unas_evaluator::latency::robust::{check_noise, interleaved_forwards, NoiseReading};

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
    /// Device to measure on (the table's): cpu, or cuda / cuda:N with `--features cuda`.
    #[arg(long, default_value = "cpu")]
    pub(super) device: String,
    /// Refuse to measure when the host is noisier than this (spread of a reference forward's
    /// repeats, as `unas profile`); 0 turns the check off.
    #[arg(long, default_value_t = 0.10)]
    pub(super) max_noise: f64,
}

pub(super) fn validate(a: ValidateArgs) -> CmdResult {
    let device = checked_device(&a.device)?;
    let space = SearchSpace::load(&a.space)?;
    let table = LookupTable::load(&a.lut).map_err(eval_err)?;
    let setting = table.setting;
    let measured = MeasuredModel {
        device,
        repeats: Repeats {
            warmup: a.warmup,
            repeats: a.repeats,
        },
        breakdown: false,
        // The table's own statistic (the lower quartile for tables made by this version).
        statistic: table.measured.statistic,
    };
    let reference = &unas_evaluator::latency::lut::covering_archs(&space)[0];
    let noise = |limit: f64| {
        check_noise(reference, &setting, device, limit, 3, &mut |n| {
            eprintln!(
                "host noise: {:.1} % (limit {:.1} %)",
                n * 100.0,
                limit * 100.0
            )
        })
    };
    let before = match a.max_noise > 0.0 {
        true => Some(noise(a.max_noise).map_err(eval_err)?),
        false => None,
    };
    let mut rng = Rng::seed(a.seed);
    let archs = (0..a.count)
        .map(|_| Ok(space.decode(&space.sample(&mut rng)?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    let pb = bar(a.count, "measuring");
    let mut rows = Vec::with_capacity(a.count);
    // Measured 8 at a time, their repeats interleaved round by round (docs/latency.md).
    for chunk in archs.chunks(8) {
        let timings =
            interleaved_forwards(chunk, &setting, measured.repeats, device).map_err(eval_err)?;
        for (arch, t) in chunk.iter().zip(timings) {
            let pred = table.predict(arch, &setting).map_err(eval_err)?;
            let real = measured.statistic.of(&t);
            pb.inc(1);
            if pb.is_hidden() {
                eprintln!(
                    "arch {}/{} {}: table {:.3} ms, measured {:.3} ms",
                    rows.len() + 1,
                    a.count,
                    arch.hash_id(),
                    pred.total_ms,
                    real
                );
            }
            rows.push((arch.hash_id(), pred.total_ms, real, Some(t.iqr_ms())));
        }
    }
    pb.finish_and_clear();
    // A second reading after: the noise the measurements themselves ran under.
    let after = match before {
        Some(_) => Some(noise(f64::INFINITY).map_err(eval_err)?),
        None => None,
    };
    // The host's speed now against the table's, shown, not checked: the reference forward's
    // level before and after relative to the one recorded with the table (the larger departure
    // of the two). Measured here, it did not track the figures' error (docs/latency.md).
    let drift = match (before, after, table.measured.reference_ms) {
        (Some(b), Some(f), Some(t)) => {
            let rel = |x: f64| x / t - 1.0;
            Some(if rel(b.level_ms).abs() >= rel(f.level_ms).abs() {
                rel(b.level_ms)
            } else {
                rel(f.level_ms)
            })
        }
        _ => None,
    };
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
    if let (Some(b), Some(f)) = (before, after) {
        println!(
            "host noise (spread of a reference forward's repeats): {:.1} % before, {:.1} % after; \
             statistic: {:?}",
            b.spread * 100.0,
            f.spread * 100.0,
            table.measured.statistic
        );
        match table.measured.reference_ms {
            Some(t) => println!(
                "host speed (the reference forward's lower quartile): {:.3} ms before, {:.3} ms \
                 after; {t:.3} ms when the table was made ({:+.1} %)",
                b.level_ms,
                f.level_ms,
                100.0 * drift.unwrap_or(0.0)
            ),
            None => println!(
                "host speed (the reference forward's lower quartile): {:.3} ms before, {:.3} ms \
                 after; the table records none (made before it was recorded)",
                b.level_ms, f.level_ms
            ),
        }
    }
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
    // The figures above are shown either way; a host that got noisy while they were taken
    // makes them a measure of the host, not of the table: the run fails (exit 1).
    noisy_after(after, a.max_noise)?;
    Ok(())
}

/// Fails (exit 1) when the noise reading taken after measuring is over the limit.
fn noisy_after(after: Option<NoiseReading>, max_noise: f64) -> CmdResult {
    match after.filter(|f| f.spread > max_noise) {
        Some(f) => Err(CliError::failure(format!(
            "measurement failed: the host got noisy while the architectures were measured \
             (a reference forward's spread {:.1} % after, limit {:.1} %): the figures above \
             do not measure the table; stop other work on this machine and run it again",
            f.spread * 100.0,
            max_noise * 100.0
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_noisy_reading_after_measuring_fails_the_run() {
        let r = |spread| {
            Some(NoiseReading {
                spread,
                level_ms: 20.0,
            })
        };
        assert!(noisy_after(r(0.05), 0.10).is_ok());
        assert!(noisy_after(None, 0.10).is_ok());
        let e = noisy_after(r(0.32), 0.10).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(
            e.message.contains("32.0 % after, limit 10.0 %"),
            "{}",
            e.message
        );
    }
}
