//! Calibration of quality proxies against a ground truth: the architectures (stratified over a
//! cost range, smallest and largest included), the machine-readable tables
//! (`ground_truth.csv`, `proxy_scores.csv`, `summary.csv`) appended row by row so that a run
//! can be resumed, and the statistics: Kendall τ and Spearman ρ with bootstrap confidence
//! intervals, the no-signal spread of τ, ICC(1) of repeated scores, and the noise ceiling of
//! the ground truth (τ between the means of two disjoint halves of its seeds).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use unas_space::rng::Rng;
use unas_space::{SearchSpace, UNetArch};

use super::metrics::kendall_tau;
use crate::EvalError;

fn io_err(file: &Path, e: impl std::fmt::Display) -> EvalError {
    EvalError::File {
        file: file.to_path_buf(),
        message: e.to_string(),
    }
}

/// `n` distinct architectures of `space` stratified over `cost`: `pool` uniform samples
/// sorted by cost, the cheapest and the most expensive included, the rest at evenly spaced
/// ranks in between.
pub fn pick_archs(
    space: &SearchSpace,
    n: usize,
    pool: usize,
    seed: u64,
    cost: &dyn Fn(&UNetArch) -> f64,
) -> Result<Vec<UNetArch>, EvalError> {
    pick_archs_by(space, n, pool, seed, cost, &|_| true, &|_| 0)
}

/// [`pick_archs`] over the samples `keep` accepts, split into groups by `group` (e.g. the
/// stage count): `n` shared evenly over the groups (in key order; the first ones get one more
/// when `n` does not divide), each group stratified over `cost` on its own.
pub fn pick_archs_by(
    space: &SearchSpace,
    n: usize,
    pool: usize,
    seed: u64,
    cost: &dyn Fn(&UNetArch) -> f64,
    keep: &dyn Fn(&UNetArch) -> bool,
    group: &dyn Fn(&UNetArch) -> usize,
) -> Result<Vec<UNetArch>, EvalError> {
    let mut rng = Rng::seed(seed);
    let mut groups: BTreeMap<usize, Vec<(f64, String, UNetArch)>> = BTreeMap::new();
    for _ in 0..pool {
        let g = space.sample(&mut rng)?;
        let a = space.decode(&g);
        if keep(&a) {
            groups
                .entry(group(&a))
                .or_default()
                .push((cost(&a), a.hash_id(), a));
        }
    }
    if groups.is_empty() {
        return Err(EvalError::Unsupported(format!(
            "none of {pool} samples of the space is kept"
        )));
    }
    let k = groups.len();
    let mut out = Vec::with_capacity(n);
    for (i, (key, mut all)) in groups.into_iter().enumerate() {
        let want = n / k + usize::from(i < n % k);
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.dedup_by(|a, b| a.1 == b.1);
        let m = all.len();
        if m < want {
            return Err(EvalError::Unsupported(format!(
                "only {m} distinct architectures in group {key} of {pool} samples, {want} requested"
            )));
        }
        let mut picks: Vec<usize> = (0..want).map(|j| j * (m - 1) / (want - 1).max(1)).collect();
        picks.dedup();
        out.extend(picks.into_iter().map(|j| all[j].2.clone()));
    }
    Ok(out)
}

/// One ground-truth measurement: `arch` trained from scratch with `seed` for `steps` steps.
#[derive(Clone, Debug, PartialEq)]
pub struct GroundTruthRow {
    /// Architecture id (hash).
    pub arch: String,
    /// Its TOML file, relative to the calibration folder.
    pub arch_file: String,
    /// Training seed (initialisation and draws; shared by all archs: common random numbers).
    pub seed: u64,
    /// Training steps.
    pub steps: usize,
    /// `iterate` (the weights after `steps` steps of a longer run) or `final` (the returned
    /// weights of a run of exactly `steps` steps: the EMA when the recipe keeps one).
    pub weights: String,
    /// Validation loss.
    pub val_loss: f64,
    /// Fréchet distance, when measured.
    pub fd: Option<f64>,
    /// KID, when measured.
    pub kid: Option<f64>,
}

/// Header of `ground_truth.csv`.
pub const GROUND_TRUTH_HEADER: &str = "arch,arch_file,seed,steps,weights,val_loss,fd,kid";

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v}"))
}

impl GroundTruthRow {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.arch,
            self.arch_file,
            self.seed,
            self.steps,
            self.weights,
            self.val_loss,
            opt(self.fd),
            opt(self.kid)
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            return None;
        }
        let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().ok()).flatten();
        Some(Self {
            arch: f[0].into(),
            arch_file: f[1].into(),
            seed: f[2].parse().ok()?,
            steps: f[3].parse().ok()?,
            weights: f[4].into(),
            val_loss: f[5].parse().ok()?,
            fd: num(f[6]),
            kid: num(f[7]),
        })
    }
}

/// Reads the rows of a CSV table written by [`append_rows`] (missing file: none).
pub(crate) fn read_lines(file: &Path, header: &str) -> Result<Vec<String>, EvalError> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Ok(Vec::new());
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h == header => {}
        Some(h) => return Err(io_err(file, format!("header `{h}`, expected `{header}`"))),
        None => return Ok(Vec::new()),
    }
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect())
}

/// Appends CSV lines to `file`, writing `header` first when the file is new; each call is one
/// write followed by a sync, so an interrupted run loses at most the rows it was writing.
pub(crate) fn append_rows(file: &Path, header: &str, lines: &[String]) -> Result<(), EvalError> {
    let new = !file.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| io_err(file, e))?;
    let mut text = String::new();
    if new {
        text.push_str(header);
        text.push('\n');
    }
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    f.write_all(text.as_bytes()).map_err(|e| io_err(file, e))?;
    f.sync_all().map_err(|e| io_err(file, e))
}

/// Reads `ground_truth.csv`.
pub fn read_ground_truth(file: &Path) -> Result<Vec<GroundTruthRow>, EvalError> {
    read_lines(file, GROUND_TRUTH_HEADER)?
        .iter()
        .map(|l| GroundTruthRow::parse(l).ok_or_else(|| io_err(file, format!("bad row `{l}`"))))
        .collect()
}

/// Appends rows to `ground_truth.csv`.
pub fn append_ground_truth(file: &Path, rows: &[GroundTruthRow]) -> Result<(), EvalError> {
    let lines: Vec<String> = rows.iter().map(GroundTruthRow::csv).collect();
    append_rows(file, GROUND_TRUTH_HEADER, &lines)
}

/// One proxy score of one architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct ProxyRow {
    /// Architecture id.
    pub arch: String,
    /// Proxy name (`params`, `macs`, `supernet-val-loss`, …).
    pub proxy: String,
    /// Seed of the supernet (or of the proxy's training); 0 for deterministic proxies.
    pub supernet_seed: u64,
    /// Score (lower = predicted better).
    pub score: f64,
}

/// Header of `proxy_scores.csv`.
pub const PROXY_HEADER: &str = "arch,proxy,supernet_seed,score";

/// Reads `proxy_scores.csv`.
pub fn read_proxy_scores(file: &Path) -> Result<Vec<ProxyRow>, EvalError> {
    read_lines(file, PROXY_HEADER)?
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let parsed = (f.len() == 4)
                .then(|| {
                    Some(ProxyRow {
                        arch: f[0].into(),
                        proxy: f[1].into(),
                        supernet_seed: f[2].parse().ok()?,
                        score: f[3].parse().ok()?,
                    })
                })
                .flatten();
            parsed.ok_or_else(|| io_err(file, format!("bad row `{l}`")))
        })
        .collect()
}

/// Appends rows to `proxy_scores.csv`.
pub fn append_proxy_scores(file: &Path, rows: &[ProxyRow]) -> Result<(), EvalError> {
    let lines: Vec<String> = rows
        .iter()
        .map(|r| format!("{},{},{},{}", r.arch, r.proxy, r.supernet_seed, r.score))
        .collect();
    append_rows(file, PROXY_HEADER, &lines)
}

/// A proxy's agreement with the ground truth.
#[derive(Clone, Debug, PartialEq)]
pub struct Agreement {
    /// Proxy name.
    pub proxy: String,
    /// Architectures compared.
    pub n: usize,
    /// Kendall τ-b with the ground-truth mean.
    pub tau: f64,
    /// Bootstrap 95 % CI of τ.
    pub tau_low: f64,
    /// Upper end.
    pub tau_high: f64,
    /// Spearman ρ.
    pub spearman: f64,
    /// ICC(1) over the proxy's repeats (supernet seeds), when it has ≥ 2.
    pub icc: Option<f64>,
    /// Consistency ICC(C,1) over the same repeats ([`icc_consistency`]).
    pub icc_consistency: Option<f64>,
}

/// Header of `summary.csv`.
pub const SUMMARY_HEADER: &str = "proxy,n,tau,tau_low,tau_high,spearman,icc,icc_consistency";

/// The `proxy` name of the summary row that holds the ground truth's own repeatability: τ, its
/// CI and ρ between the means of the two halves of the seeds (the noise ceiling), ICCs over
/// the seeds.
pub const NOISE_CEILING_ROW: &str = "ground-truth-noise-ceiling";

impl Agreement {
    /// The CSV line of `summary.csv`.
    pub fn csv(&self) -> String {
        format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{},{}",
            self.proxy,
            self.n,
            self.tau,
            self.tau_low,
            self.tau_high,
            self.spearman,
            self.icc.map_or(String::new(), |v| format!("{v:.6}")),
            self.icc_consistency
                .map_or(String::new(), |v| format!("{v:.6}"))
        )
    }
}

/// Reads `summary.csv` (a missing file is an error: a report that cites it must find it).
pub fn read_summary(file: &Path) -> Result<Vec<Agreement>, EvalError> {
    if !file.exists() {
        return Err(io_err(file, "no such file"));
    }
    let opt = |v: &str| -> Result<Option<f64>, ()> {
        if v.is_empty() {
            Ok(None)
        } else {
            v.parse().map(Some).map_err(|_| ())
        }
    };
    read_lines(file, SUMMARY_HEADER)?
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let parsed = (f.len() == 8)
                .then(|| -> Result<Agreement, ()> {
                    let num = |v: &str| v.parse::<f64>().map_err(|_| ());
                    Ok(Agreement {
                        proxy: f[0].into(),
                        n: f[1].parse().map_err(|_| ())?,
                        tau: num(f[2])?,
                        tau_low: num(f[3])?,
                        tau_high: num(f[4])?,
                        spearman: num(f[5])?,
                        icc: opt(f[6])?,
                        icc_consistency: opt(f[7])?,
                    })
                })
                .and_then(Result::ok);
            parsed.ok_or_else(|| io_err(file, format!("bad row `{l}`")))
        })
        .collect()
}

/// The calibration targets a search objective must meet (issue 13): τ ≥ 0.6 against the
/// ground-truth mean over ≥ 12 architectures, τ's CI lower bound above parameter count's and
/// MACs' τ, ICC ≥ 0.8 over two supernet seeds, and a ground-truth noise ceiling ≥ 0.8.
/// Returns the targets `proxy`'s row of `summary` misses (empty: all met), or `None` when the
/// summary has no row for it.
pub fn unmet_targets(summary: &[Agreement], proxy: &str) -> Option<Vec<String>> {
    let row = summary.iter().find(|r| r.proxy == proxy)?;
    let tau_of = |name: &str| summary.iter().find(|r| r.proxy == name).map(|r| r.tau);
    let mut unmet = Vec::new();
    if row.n < 12 {
        unmet.push(format!("{} architectures (target ≥ 12)", row.n));
    }
    if row.tau.is_nan() || row.tau < 0.6 {
        unmet.push(format!("τ {:.3} (target ≥ 0.6)", row.tau));
    }
    for base in ["params", "macs"] {
        match tau_of(base) {
            Some(t) if row.tau_low > t => {}
            Some(t) => unmet.push(format!(
                "τ CI lower bound {:.3} not above the τ of {base} ({t:.3})",
                row.tau_low
            )),
            None => unmet.push(format!("no {base} row to compare with")),
        }
    }
    match row.icc {
        Some(v) if v >= 0.8 => {}
        Some(v) => unmet.push(format!("ICC(1) over supernet seeds {v:.3} (target ≥ 0.8)")),
        None => unmet.push("no ICC (needs ≥ 2 supernet seeds)".into()),
    }
    match summary.iter().find(|r| r.proxy == NOISE_CEILING_ROW) {
        Some(c) if c.tau >= 0.8 => {}
        Some(c) => unmet.push(format!(
            "ground-truth noise ceiling {:.3} (target ≥ 0.8)",
            c.tau
        )),
        None => unmet.push("no ground-truth noise ceiling".into()),
    }
    Some(unmet)
}

mod stats;

pub use stats::*;

#[cfg(test)]
mod tests;
