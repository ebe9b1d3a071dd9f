//! The calibration summary: τ, ρ, ICCs and the noise ceiling from the tables, as CSV and
//! Markdown.

#[allow(unused_imports)]
use super::*;

/// `--summary-only` on a folder trained at another budget would summarise nothing (every mean
/// empty): refused, naming the recorded protocol's `steps` or the steps the table has.
pub(super) fn check_summary_steps(
    out: &std::path::Path,
    gt_file: &std::path::Path,
    gt: &[unas_evaluator::quality::calibration::GroundTruthRow],
    steps: usize,
) -> CmdResult {
    if let Some((file, was)) = read_gt_settings(out)? {
        if let Some(k) = was["steps"].as_u64().filter(|&k| k != steps as u64) {
            return Err(CliError::input(format!(
                "{}: field `steps`: this folder's ground truth is {k} steps, --steps is {steps} \
                 (pass --steps {k})",
                file.display()
            )));
        }
    }
    let finals: std::collections::BTreeSet<usize> = gt
        .iter()
        .filter(|r| r.weights == "final")
        .map(|r| r.steps)
        .collect();
    if !finals.is_empty() && !finals.contains(&steps) {
        return Err(CliError::input(format!(
            "{}: no `final` rows at --steps {steps} (the table has {finals:?})",
            gt_file.display()
        )));
    }
    Ok(())
}

/// summary.csv and README.md of a calibration folder, from its tables.
pub(super) fn write_summary(
    a: &CalibrateArgs,
    archs: &[(String, UNetArch)],
    gt: &[unas_evaluator::quality::calibration::GroundTruthRow],
    px: &[unas_evaluator::quality::calibration::ProxyRow],
) -> CmdResult {
    use unas_evaluator::quality::calibration::*;
    let (means, seeds) = ground_truth_means(gt, a.steps, "final");
    let table = seed_table(gt, a.steps, "final");
    // Early from-scratch losses as proxies: one seed (0), as a search would use them.
    let mut all = px.to_vec();
    for &b in &a.budgets {
        for r in gt
            .iter()
            .filter(|r| r.steps == b && r.weights == "iterate" && r.seed == 0)
        {
            all.push(ProxyRow {
                arch: r.arch.clone(),
                proxy: format!("scratch-val-loss@{b}"),
                supernet_seed: 0,
                score: r.val_loss,
            });
        }
    }
    let mut agreements = agreements(&means, &all, 2000);
    let ceiling_row = noise_ceiling_row(&table, 2000);
    agreements.extend(ceiling_row.clone());
    let mut csv = String::from(SUMMARY_HEADER);
    csv.push('\n');
    for g in &agreements {
        csv.push_str(&g.csv());
        csv.push('\n');
    }
    let write = |name: &str, text: &str| {
        let f = a.out.join(name);
        std::fs::write(&f, text).map_err(|e| CliError::failure(format!("{}: {e}", f.display())))
    };
    write("summary.csv", &csv)?;
    let n = means.len();
    let mut md = format!(
        "# Calibration tables (written by `unas quality calibrate`)\n\n\
         Space `{}`; {} architectures in `archs/`; ground truth: validation loss after {} steps \
         from scratch (`final` rows of `ground_truth.csv`), mean over the {} seed(s) every \
         architecture has ({:?}). The no-signal sd of Kendall τ at n = {n} is {:.3}.\n\n",
        a.space,
        archs.len(),
        a.steps,
        seeds.len(),
        seeds,
        if n >= 2 { tau_null_sd(n) } else { f64::NAN },
    );
    if let Ok(text) = std::fs::read_to_string(a.out.join(GT_SETTINGS)) {
        md.push_str(&format!(
            "Ground-truth protocol (`{GT_SETTINGS}`): `{}`.\n\n",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    match &ceiling_row {
        Some(c) => md.push_str(&format!(
            "Noise ceiling of the ground truth (τ between the means of the two halves of the \
             seeds, row `{NOISE_CEILING_ROW}`): **{:.3}** [{:.3}, {:.3}]; ICC(1) over seeds: \
             {:.3}, consistency ICC(C,1): {:.3}.{}\n\n",
            c.tau,
            c.tau_low,
            c.tau_high,
            c.icc.unwrap_or(f64::NAN),
            c.icc_consistency.unwrap_or(f64::NAN),
            match noise_ceiling_splits(&table) {
                Some((mean, min, max, k)) if k > 1 => format!(
                    " Over all {k} ways of splitting the seeds into halves of that size: \
                     mean {mean:.3}, range [{min:.3}, {max:.3}] (the row above is the first \
                     seeds against the rest)."
                ),
                _ => String::new(),
            }
        )),
        None => md.push_str("Noise ceiling: needs ≥ 2 seeds of ≥ 3 architectures.\n\n"),
    }
    md.push_str(
        "| proxy | n | τ | τ 95 % CI | Spearman ρ | ICC(1) | ICC(C,1) |\n\
         |---|---:|---:|---|---:|---:|---:|\n",
    );
    let cell = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}"));
    for g in agreements.iter().filter(|g| g.proxy != NOISE_CEILING_ROW) {
        md.push_str(&format!(
            "| {} | {} | {:.3} | [{:.3}, {:.3}] | {:.3} | {} | {} |\n",
            g.proxy,
            g.n,
            g.tau,
            g.tau_low,
            g.tau_high,
            g.spearman,
            cell(g.icc),
            cell(g.icc_consistency)
        ));
    }
    md.push_str(
        "\nScores are oriented lower = better (parameters and MACs negated: more is predicted \
         better). τ is τ-b against the ground-truth mean; CIs are percentile bootstraps over \
         architectures (2000 resamples). ICCs are over the proxy's repeats (supernet seeds): \
         ICC(1) counts a per-seed offset as disagreement, the consistency ICC(C,1) does not. \
         `scratch-val-loss@B` is the validation loss after B \
         steps of seed 0's ground-truth run itself: while seed 0 is part of the ground-truth \
         mean it is not an independent proxy (an upper bound for early stopping).\n",
    );
    let budgets: Vec<String> = a.budgets.iter().map(|b| b.to_string()).collect();
    md.push_str(&format!(
        "\nRecompute with `unas quality calibrate --space {} --steps {} --budgets {} \
         --summary-only --out DIR`.\n",
        a.space,
        a.steps,
        budgets.join(",")
    ));
    write("README.md", &md)?;
    print!("{md}");
    Ok(())
}
