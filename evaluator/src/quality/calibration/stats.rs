//! Rank statistics of a calibration: Spearman ρ, τ's no-signal spread and bootstrap interval,
//! ICCs, the noise ceiling of the ground truth, and the agreement of each proxy with it.

#[allow(unused_imports)]
use super::*;

/// Spearman's ρ (Pearson correlation of average ranks).
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            for &k in &idx[i..=j] {
                r[k] = avg;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The standard deviation of Kendall τ between `n` items under no association:
/// √(2(2n+5) / (9n(n−1))).
pub fn tau_null_sd(n: usize) -> f64 {
    let n = n as f64;
    (2.0 * (2.0 * n + 5.0) / (9.0 * n * (n - 1.0))).sqrt()
}

/// Percentile bootstrap CI (2.5 %, 97.5 %) of Kendall τ-b over items resampled with
/// replacement (`iters` resamples from `seed`; resamples where τ is undefined are skipped).
pub fn bootstrap_tau(a: &[f64], b: &[f64], iters: usize, seed: u64) -> (f64, f64) {
    let n = a.len().min(b.len());
    let mut rng = Rng::seed(seed);
    let mut taus = Vec::with_capacity(iters);
    for _ in 0..iters {
        let idx: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
        let (x, y): (Vec<f64>, Vec<f64>) = idx.iter().map(|&i| (a[i], b[i])).unzip();
        let t = kendall_tau(&x, &y);
        if t.is_finite() {
            taus.push(t);
        }
    }
    taus.sort_by(f64::total_cmp);
    if taus.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let q = |p: f64| taus[((p * (taus.len() - 1) as f64).round() as usize).min(taus.len() - 1)];
    (q(0.025), q(0.975))
}

/// ICC(1) of a table of scores, `rows[item][repeat]` (each item scored the same number of
/// times, ≥ 2): σ²_item / (σ²_item + σ²_repeat) from the one-way ANOVA mean squares
/// (MSB − MSW) / (MSB + (k − 1)·MSW).
pub fn icc1(rows: &[Vec<f64>]) -> f64 {
    let n = rows.len();
    let k = rows.first().map_or(0, Vec::len);
    if n < 2 || k < 2 || rows.iter().any(|r| r.len() != k) {
        return f64::NAN;
    }
    let means: Vec<f64> = rows
        .iter()
        .map(|r| r.iter().sum::<f64>() / k as f64)
        .collect();
    let grand = means.iter().sum::<f64>() / n as f64;
    let msb = k as f64 * means.iter().map(|m| (m - grand).powi(2)).sum::<f64>() / (n - 1) as f64;
    let msw = rows
        .iter()
        .zip(&means)
        .map(|(r, m)| r.iter().map(|v| (v - m).powi(2)).sum::<f64>())
        .sum::<f64>()
        / (n * (k - 1)) as f64;
    (msb - msw) / (msb + (k as f64 - 1.0) * msw)
}

/// Consistency ICC(C,1) of a two-way model (Shrout & Fleiss' ICC(3,1); McGraw & Wong's
/// ICC(C,1)) of `rows` (one row per item, one column per repeat): like [`icc1`], but an offset
/// common to a whole repeat (one supernet seed scoring every candidate higher) is not
/// disagreement — the number that matters when only the order within one repeat is used.
pub fn icc_consistency(rows: &[Vec<f64>]) -> f64 {
    let n = rows.len();
    let k = rows.first().map_or(0, Vec::len);
    if n < 2 || k < 2 || rows.iter().any(|r| r.len() != k) {
        return f64::NAN;
    }
    let (nf, kf) = (n as f64, k as f64);
    let grand = rows.iter().flatten().sum::<f64>() / (nf * kf);
    let row_means: Vec<f64> = rows.iter().map(|r| r.iter().sum::<f64>() / kf).collect();
    let col_means: Vec<f64> = (0..k)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / nf)
        .collect();
    let ssr = kf * row_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
    let ssc = nf * col_means.iter().map(|m| (m - grand).powi(2)).sum::<f64>();
    let sst = rows
        .iter()
        .flatten()
        .map(|v| (v - grand).powi(2))
        .sum::<f64>();
    let msr = ssr / (nf - 1.0);
    let mse = (sst - ssr - ssc) / ((nf - 1.0) * (kf - 1.0));
    (msr - mse) / (msr + (kf - 1.0) * mse)
}

/// Mean ground-truth validation loss per architecture over the seeds that every architecture
/// has at `steps` with `weights`; returns (arch → mean, seeds used). Seeds missing for some
/// architecture are left out, so every mean averages the same seeds.
pub fn ground_truth_means(
    rows: &[GroundTruthRow],
    steps: usize,
    weights: &str,
) -> (BTreeMap<String, f64>, Vec<u64>) {
    let table = seed_table(rows, steps, weights);
    let seeds = common_seeds(&table);
    let means = table
        .iter()
        .map(|(a, by_seed)| {
            let v: Vec<f64> = seeds.iter().map(|s| by_seed[s]).collect();
            (a.clone(), v.iter().sum::<f64>() / v.len().max(1) as f64)
        })
        .collect();
    (means, seeds)
}

/// arch → seed → validation loss, at `steps` with `weights`.
pub fn seed_table(
    rows: &[GroundTruthRow],
    steps: usize,
    weights: &str,
) -> BTreeMap<String, BTreeMap<u64, f64>> {
    let mut t: BTreeMap<String, BTreeMap<u64, f64>> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| r.steps == steps && r.weights == weights)
    {
        t.entry(r.arch.clone())
            .or_default()
            .insert(r.seed, r.val_loss);
    }
    t
}

pub(super) fn common_seeds(table: &BTreeMap<String, BTreeMap<u64, f64>>) -> Vec<u64> {
    let mut it = table.values();
    let Some(first) = it.next() else {
        return Vec::new();
    };
    let mut seeds: Vec<u64> = first.keys().copied().collect();
    for m in it {
        seeds.retain(|s| m.contains_key(s));
    }
    seeds
}

/// An architecture's mean over the seeds `s`.
pub(super) fn seed_mean(m: &BTreeMap<u64, f64>, s: &[u64]) -> f64 {
    s.iter().map(|k| m[k]).sum::<f64>() / s.len() as f64
}

/// The ground truth's noise ceiling as a summary row ([`NOISE_CEILING_ROW`]): the halves'
/// means compared like a proxy with the ground truth (bootstrap over architectures), ICCs over
/// the common seeds; `None` with fewer than 2 seeds or 3 architectures.
pub fn noise_ceiling_row(
    table: &BTreeMap<String, BTreeMap<u64, f64>>,
    iters: usize,
) -> Option<Agreement> {
    let seeds = common_seeds(table);
    if seeds.len() < 2 || table.len() < 3 {
        return None;
    }
    let half = seeds.len() / 2;
    let a: Vec<f64> = table
        .values()
        .map(|m| seed_mean(m, &seeds[..half]))
        .collect();
    let b: Vec<f64> = table
        .values()
        .map(|m| seed_mean(m, &seeds[half..]))
        .collect();
    let rows: Vec<Vec<f64>> = table
        .values()
        .map(|m| seeds.iter().map(|s| m[s]).collect())
        .collect();
    let (tau_low, tau_high) = bootstrap_tau(&a, &b, iters, 0);
    Some(Agreement {
        proxy: NOISE_CEILING_ROW.to_string(),
        n: a.len(),
        tau: kendall_tau(&a, &b),
        tau_low,
        tau_high,
        spearman: spearman(&a, &b),
        icc: Some(icc1(&rows)),
        icc_consistency: Some(icc_consistency(&rows)),
    })
}

/// The noise ceiling over every way of splitting the common seeds into a first half of
/// ⌊n/2⌋ seeds and the rest (the row of [`noise_ceiling_row`] is one of them): τ between the
/// halves' means for each split, summarised as (mean, min, max, number of splits); `None`
/// with fewer than 2 seeds, 3 architectures or more than 20 seeds.
pub fn noise_ceiling_splits(
    table: &BTreeMap<String, BTreeMap<u64, f64>>,
) -> Option<(f64, f64, f64, usize)> {
    let seeds = common_seeds(table);
    if seeds.len() < 2 || table.len() < 3 || seeds.len() > 20 {
        return None;
    }
    let half = seeds.len() / 2;
    let taus: Vec<f64> = (0u32..1 << seeds.len())
        .filter(|mask| mask.count_ones() as usize == half)
        .map(|mask| {
            let (a, b): (Vec<u64>, Vec<u64>) =
                seeds
                    .iter()
                    .enumerate()
                    .fold((vec![], vec![]), |(mut a, mut b), (i, &s)| {
                        if mask >> i & 1 == 1 {
                            a.push(s)
                        } else {
                            b.push(s)
                        }
                        (a, b)
                    });
            let x: Vec<f64> = table.values().map(|m| seed_mean(m, &a)).collect();
            let y: Vec<f64> = table.values().map(|m| seed_mean(m, &b)).collect();
            kendall_tau(&x, &y)
        })
        .collect();
    let n = taus.len();
    let min = taus.iter().copied().fold(f64::INFINITY, f64::min);
    let max = taus.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((taus.iter().sum::<f64>() / n as f64, min, max, n))
}

/// The agreement of every proxy in `scores` with the ground-truth `means` (archs missing
/// from either side are left out; a proxy's score is its mean over its seeds).
pub fn agreements(
    means: &BTreeMap<String, f64>,
    scores: &[ProxyRow],
    iters: usize,
) -> Vec<Agreement> {
    let mut by_proxy: BTreeMap<&str, BTreeMap<&str, BTreeMap<u64, f64>>> = BTreeMap::new();
    for r in scores {
        by_proxy
            .entry(&r.proxy)
            .or_default()
            .entry(&r.arch)
            .or_default()
            .insert(r.supernet_seed, r.score);
    }
    by_proxy
        .into_iter()
        .map(|(proxy, archs)| {
            let (mut p, mut g, mut reps) = (Vec::new(), Vec::new(), Vec::new());
            for (arch, seeds) in &archs {
                if let Some(&m) = means.get(*arch) {
                    p.push(seeds.values().sum::<f64>() / seeds.len() as f64);
                    g.push(m);
                    reps.push(seeds.values().copied().collect::<Vec<f64>>());
                }
            }
            let (tau_low, tau_high) = bootstrap_tau(&p, &g, iters, 0);
            let k = reps.first().map_or(0, Vec::len);
            let repeated = k >= 2 && reps.iter().all(|r| r.len() == k);
            let icc = repeated.then(|| icc1(&reps));
            let icc_consistency = repeated.then(|| icc_consistency(&reps));
            Agreement {
                proxy: proxy.to_string(),
                n: p.len(),
                tau: kendall_tau(&p, &g),
                tau_low,
                tau_high,
                spearman: spearman(&p, &g),
                icc,
                icc_consistency,
            }
        })
        .collect()
}
