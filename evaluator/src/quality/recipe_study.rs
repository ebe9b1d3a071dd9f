//! The recipe study's table (`recipes.csv`: one row per recipe, training seed and sampling-step
//! count, appended as results come so a killed run resumes) and its summary: per-cell means with
//! Student-t 95 % intervals over the training seeds, and paired comparisons (same seed, so the
//! same initialisation, data order and sampling noise) of recipe B at one step count against
//! recipe A at another.

use std::collections::BTreeMap;
use std::path::Path;

use super::calibration::{append_rows, read_lines};
use super::proxy::ProxyConfig;
use super::train::Recipe;
use crate::EvalError;

/// Recipe `base` with the schedule, prediction target and loss weighting of `of` (A or B): the
/// learning rate, EMA and timestep count stay the study's, so both recipes train at equal
/// budget.
pub fn with_schedule_of(base: &Recipe, of: &Recipe) -> Recipe {
    Recipe {
        betas: of.betas,
        prediction: of.prediction,
        zero_terminal_snr: of.zero_terminal_snr,
        min_snr_gamma: of.min_snr_gamma,
        ..base.clone()
    }
}

/// Hash of what a recipe study's rows depend on: the architecture, the proxy settings (the
/// recipe's schedule, target and weighting reset: the study sets them per row) without the
/// cache, objective and provenance fields, and the sampling-step counts.
pub fn settings_key(arch_id: &str, cfg: &ProxyConfig, compare_steps: &[usize]) -> String {
    let cfg = ProxyConfig {
        recipe: with_schedule_of(&cfg.recipe, &Recipe::default()),
        cache_dir: None,
        prepared: None,
        calibration: None,
        supernets: None,
        objective: Default::default(),
        ..cfg.clone()
    };
    let text = format!(
        "{arch_id}|{}|{compare_steps:?}",
        serde_json::to_string(&cfg).expect("serialisable")
    );
    super::hash::sha16(text.as_bytes())
}

/// One scored sample set: a recipe trained with one seed, sampled with `sampling_steps` steps.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipeRow {
    /// `A` (SD1.5's recipe) or `B` (DeciDiffusion's).
    pub recipe: String,
    /// Training seed (initialisation, data order, timesteps, noise); shared by both recipes.
    pub seed: u64,
    /// DDIM sampling steps.
    pub sampling_steps: usize,
    /// Final training loss (not comparable between recipes: different targets and weights).
    pub final_loss: f64,
    /// Fréchet distance on the proxy's extractor features (lower = better).
    pub fd: f64,
    /// KID, mean unbiased MMD² over subsets (lower = better).
    pub kid: f64,
    /// Prompt adherence, mean over attributes (higher = better; NaN without labels).
    pub adherence: f64,
    /// Hash of the study's settings (architecture, proxy settings but the recipe, step
    /// counts): rows of other settings are refused.
    pub settings: String,
}

/// Header of `recipes.csv`.
pub const RECIPE_HEADER: &str = "recipe,seed,sampling_steps,final_loss,fd,kid,adherence,settings";

impl RecipeRow {
    fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{}",
            self.recipe,
            self.seed,
            self.sampling_steps,
            self.final_loss,
            self.fd,
            self.kid,
            self.adherence,
            self.settings
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 8 {
            return None;
        }
        Some(Self {
            recipe: f[0].into(),
            seed: f[1].parse().ok()?,
            sampling_steps: f[2].parse().ok()?,
            final_loss: f[3].parse().ok()?,
            fd: f[4].parse().ok()?,
            kid: f[5].parse().ok()?,
            adherence: f[6].parse().ok()?,
            settings: f[7].into(),
        })
    }
}

/// Reads `recipes.csv` (empty when the file does not exist).
pub fn read_recipe_rows(file: &Path) -> Result<Vec<RecipeRow>, EvalError> {
    read_lines(file, RECIPE_HEADER)?
        .iter()
        .map(|l| {
            RecipeRow::parse(l).ok_or_else(|| EvalError::File {
                file: file.to_path_buf(),
                message: format!("bad row `{l}`"),
            })
        })
        .collect()
}

/// Appends rows to `recipes.csv` (one write and sync per call).
pub fn append_recipe_rows(file: &Path, rows: &[RecipeRow]) -> Result<(), EvalError> {
    let lines: Vec<String> = rows.iter().map(RecipeRow::csv).collect();
    append_rows(file, RECIPE_HEADER, &lines)
}

/// Two-sided 95 % quantile of Student's t with `df` degrees of freedom (table for df ≤ 30;
/// 2.0 beyond, between the df = 30 value 2.042 and the normal 1.960).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        d if d <= 30 => T[d - 1],
        _ => 2.0,
    }
}

/// Mean of `xs` with its Student-t 95 % interval `(mean, low, high)` (NaN bounds for one value).
pub fn t_interval(xs: &[f64]) -> (f64, f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let half = t975(n - 1) * (var / n as f64).sqrt();
    (mean, mean - half, mean + half)
}

/// One metric of a row: `fd`, `kid` or `adherence`.
fn metric(r: &RecipeRow, name: &str) -> f64 {
    match name {
        "fd" => r.fd,
        "kid" => r.kid,
        _ => r.adherence,
    }
}

/// `(recipe, sampling_steps) → seed → row`.
type Cells<'a> = BTreeMap<(String, usize), BTreeMap<u64, &'a RecipeRow>>;

fn cells(rows: &[RecipeRow]) -> Cells<'_> {
    let mut out: Cells<'_> = BTreeMap::new();
    for r in rows {
        out.entry((r.recipe.clone(), r.sampling_steps))
            .or_default()
            .insert(r.seed, r);
    }
    out
}

/// Paired differences `metric(B @ b_steps) − metric(A @ a_steps)` over the seeds both have.
pub fn paired_differences(
    rows: &[RecipeRow],
    name: &str,
    b_steps: usize,
    a_steps: usize,
) -> Vec<(u64, f64)> {
    let c = cells(rows);
    let (Some(b), Some(a)) = (c.get(&("B".into(), b_steps)), c.get(&("A".into(), a_steps))) else {
        return Vec::new();
    };
    b.iter()
        .filter_map(|(s, rb)| a.get(s).map(|ra| (*s, metric(rb, name) - metric(ra, name))))
        .collect()
}

/// Decimals that show `x` with 4 significant digits (KID's scale depends on the extractor:
/// ≈ 1e-2 on Inception features, ≈ 7e4 on the shapes extractor's).
fn decimals(x: f64) -> usize {
    if x == 0.0 || !x.is_finite() {
        return 1;
    }
    (3 - x.abs().log10().floor() as i64).clamp(0, 12) as usize
}

/// `mean [low, high]` at `digits` decimals (the mean's significant digits when `None`).
fn fmt_ci(m: f64, lo: f64, hi: f64, digits: Option<usize>) -> String {
    let digits = digits.unwrap_or_else(|| decimals(m));
    if lo.is_nan() {
        format!("{m:.digits$}")
    } else {
        format!("{m:.digits$} [{lo:.digits$}, {hi:.digits$}]")
    }
}

/// What a paired 95 % interval says about "B is at least as good as A" for a metric where
/// `lower_better` holds (FD, KID) or not (adherence).
fn verdict(lo: f64, hi: f64, lower_better: bool) -> &'static str {
    if lo.is_nan() {
        "one seed: no interval"
    } else if (lower_better && hi < 0.0) || (!lower_better && lo > 0.0) {
        "B better (interval excludes 0)"
    } else if (lower_better && lo > 0.0) || (!lower_better && hi < 0.0) {
        "A better (interval excludes 0)"
    } else {
        "not separable (interval contains 0)"
    }
}

/// The study's Markdown summary: per-cell means with t intervals over seeds, and the paired
/// comparisons B @ `b_steps` vs A @ `a_steps` for FD, KID and adherence.
pub fn summary_markdown(
    rows: &[RecipeRow],
    compare_steps: &[usize],
    claim: (usize, usize),
) -> String {
    let c = cells(rows);
    let seeds: std::collections::BTreeSet<u64> = rows.iter().map(|r| r.seed).collect();
    let mut md = format!(
        "Seeds: {:?} ({} per recipe). Cells: mean over seeds with a Student-t 95 % interval.\n\n| recipe | sampling steps | seeds | final training loss | FD | KID | adherence |\n|---|---:|---:|---:|---:|---:|---:|\n",
        seeds,
        seeds.len()
    );
    for recipe in ["A", "B"] {
        for &s in compare_steps {
            let Some(cell) = c.get(&(recipe.to_string(), s)) else {
                continue;
            };
            let pick = |f: &dyn Fn(&RecipeRow) -> f64| -> Vec<f64> {
                cell.values().map(|r| f(r)).collect()
            };
            let (l, _, _) = t_interval(&pick(&|r| r.final_loss));
            let (f, flo, fhi) = t_interval(&pick(&|r| r.fd));
            let (k, klo, khi) = t_interval(&pick(&|r| r.kid));
            let (a, alo, ahi) = t_interval(&pick(&|r| r.adherence));
            md.push_str(&format!(
                "| {recipe} | {s} | {} | {l:.4} | {} | {} | {} |\n",
                cell.len(),
                fmt_ci(f, flo, fhi, Some(1)),
                fmt_ci(k, klo, khi, None),
                fmt_ci(a, alo, ahi, Some(3))
            ));
        }
    }
    let (b_steps, a_steps) = claim;
    md.push_str(&format!(
        "\nClaim: B at {b_steps} sampling steps is at least as good as A at {a_steps}. Paired differences B@{b_steps} − A@{a_steps} (same training seed), mean with a Student-t 95 % interval:\n\n| metric | per seed | mean [95 % CI] | reading |\n|---|---|---|---|\n"
    ));
    for (name, label, digits, lower_better) in [
        ("fd", "FD", Some(1), true),
        ("kid", "KID", None, true),
        ("adherence", "adherence", Some(3), false),
    ] {
        let d = paired_differences(rows, name, b_steps, a_steps);
        if d.is_empty() {
            continue;
        }
        let xs: Vec<f64> = d.iter().map(|(_, x)| *x).collect();
        let (m, lo, hi) = t_interval(&xs);
        let digits = digits.unwrap_or_else(|| decimals(m));
        md.push_str(&format!(
            "| {label} | {} | {} | {} |\n",
            d.iter()
                .map(|(s, x)| format!("seed {s}: {x:.digits$}"))
                .collect::<Vec<_>>()
                .join(", "),
            fmt_ci(m, lo, hi, Some(digits)),
            verdict(lo, hi, lower_better)
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(recipe: &str, seed: u64, steps: usize, fd: f64) -> RecipeRow {
        RecipeRow {
            recipe: recipe.into(),
            seed,
            sampling_steps: steps,
            final_loss: 0.1,
            fd,
            kid: fd / 1e4,
            adherence: 0.5,
            settings: "s".into(),
        }
    }

    #[test]
    fn t_interval_matches_a_hand_computation() {
        // mean 2, sd 1, n 3: half-width 4.303 / sqrt(3) = 2.4843.
        let (m, lo, hi) = t_interval(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((hi - m - 2.48434).abs() < 1e-4, "{hi}");
        assert!((m - lo - 2.48434).abs() < 1e-4, "{lo}");
        assert!(t_interval(&[5.0]).1.is_nan());
    }

    #[test]
    fn paired_differences_pair_by_seed_and_skip_unpaired() {
        let rows = vec![
            row("A", 0, 50, 10.0),
            row("A", 1, 50, 20.0),
            row("B", 0, 30, 7.0),
            row("B", 1, 30, 25.0),
            row("B", 2, 30, 1.0),
        ];
        assert_eq!(
            paired_differences(&rows, "fd", 30, 50),
            vec![(0, -3.0), (1, 5.0)]
        );
        let md = summary_markdown(&rows, &[30, 50], (30, 50));
        assert!(md.contains("seed 0: -3.0, seed 1: 5.0"), "{md}");
        assert!(md.contains("not separable"), "{md}");
    }

    #[test]
    fn decimals_keep_four_significant_digits() {
        assert_eq!(decimals(69844.67), 0);
        assert_eq!(decimals(1.234), 3);
        assert_eq!(decimals(0.004321), 6);
    }

    #[test]
    fn csv_round_trips() {
        let r = row("B", 3, 20, 123.5);
        assert_eq!(RecipeRow::parse(&r.csv()), Some(r));
    }
}
