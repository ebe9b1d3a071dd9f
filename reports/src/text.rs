//! `report.md` and `report.html`.

use std::collections::BTreeMap;

use unas_search::{ControllerConfig, StudyResults, TrialRecord, TrialStatus};

use crate::{failures, layout_summary, quality_details, reference_name, ReportInput};

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// `1234567` → `1,234,567`.
fn thousands(v: Option<u64>) -> String {
    let Some(v) = v else { return "–".into() };
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A table: header and rows of cells (plain text).
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn markdown(&self) -> String {
        let cell = |s: &String| s.replace('|', "\\|").replace('\n', " ");
        let mut out = format!(
            "| {} |\n|{}|\n",
            self.head.iter().map(cell).collect::<Vec<_>>().join(" | "),
            self.head
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for r in &self.rows {
            out.push_str(&format!(
                "| {} |\n",
                r.iter().map(cell).collect::<Vec<_>>().join(" | ")
            ));
        }
        out
    }

    fn html(&self) -> String {
        let mut out = String::from("<table>\n<thead><tr>");
        for h in &self.head {
            out.push_str(&format!("<th>{}</th>", esc(h)));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &self.rows {
            out.push_str("<tr>");
            for c in r {
                out.push_str(&format!("<td>{}</td>", esc(c)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn settings_table(input: &ReportInput) -> Table {
    let c = &input.config;
    let controller = match &c.controller {
        ControllerConfig::Aging { population, sample } => {
            format!("aging evolution (population {population}, sample {sample})")
        }
        ControllerConfig::Nsga2 { population } => format!("NSGA-II (population {population})"),
        ControllerConfig::Random => "random search".into(),
    };
    let l = &c.latency;
    let q = &c.quality;
    let per = if l.per_image() { " per image" } else { "" };
    let mut constraints = vec![match l.budget_quantile {
        Some(q) => format!(
            "latency ≤ {} ms{per} (the {q} quantile of the latency model's predictions over \
             300 samples of the space, resolved when the study was created)",
            l.budget_ms
        ),
        None => format!("latency ≤ {} ms{per}", l.budget_ms),
    }];
    if let Some(p) = c.constraints.max_params {
        constraints.push(format!("params ≤ {}", thousands(Some(p))));
    }
    if let Some(m) = c.constraints.max_macs {
        constraints.push(format!("MACs ≤ {}", thousands(Some(m))));
    }
    let rows = vec![
        ("study", c.name.clone()),
        ("search space", format!("{} ({})", input.space_name, c.space)),
        ("controller", controller),
        ("trial budget", c.trials.to_string()),
        ("seed", c.seed.to_string()),
        ("latency model", input.latency_model()),
        (
            "latency setting",
            format!(
                "latent {0}x{0}, batch {1}, {2} text tokens, {3}",
                l.latent,
                l.batch,
                l.text_len,
                l.dtype.name()
            ),
        ),
        ("constraints", constraints.join(", ")),
        (
            "quality (proxy)",
            format!(
                "data {}, {} images at {} px, {} training steps (batch {}), {} samples, {} DDIM steps, guidance {}",
                q.data,
                q.images,
                q.image_size,
                q.steps,
                q.batch,
                q.samples,
                q.sampling_steps,
                q.guidance
            ),
        ),
        ("quality metric", input.metric()),
        (
            "successive halving",
            match &c.halving {
                None => "none".into(),
                Some(h) => {
                    let at = |k: u32| {
                        let n = input
                            .trials
                            .iter()
                            .filter(|t| unas_search::engine::halving::top_rung(t) == k)
                            .filter(|t| t.quality.is_some())
                            .count();
                        format!("{n} at rung {k}")
                    };
                    let reached: Vec<String> = (0..h.rungs as u32).map(at).collect();
                    let steps = &c.quality.rung_finetune_steps;
                    format!(
                        "{} rungs, reduction {} (rungs 1..: {} fine-tuning steps); scored trials by \
                         highest rung: {}; the front takes each trial's highest rung",
                        h.rungs,
                        h.reduction,
                        steps
                            .iter()
                            .map(|k| k.to_string())
                            .collect::<Vec<_>>()
                            .join(" / "),
                        reached.join(", ")
                    )
                }
            },
        ),
        (
            "reference archs",
            if c.references.is_empty() {
                "none".into()
            } else {
                c.references.join(", ")
            },
        ),
    ];
    Table {
        head: vec!["setting".into(), "value".into()],
        rows: rows
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect(),
    }
}

fn trial_row(t: &TrialRecord, label: String, knee: Option<u64>, per_image: bool) -> Vec<String> {
    let label = if knee == Some(t.number) && label.starts_with('#') {
        format!("{label} (knee)")
    } else {
        label
    };
    let latency = if per_image {
        format!(
            "{} at {} steps",
            opt_f(t.latency_ms.map(|l| l / 1e3), 4),
            t.arch.sampling_steps.map_or("–".into(), |k| k.to_string())
        )
    } else {
        opt_f(t.latency_ms, 3)
    };
    vec![
        label,
        t.hash.chars().take(12).collect(),
        thousands(t.params),
        thousands(t.macs),
        latency,
        opt_f(t.quality, 4),
        match t.status {
            TrialStatus::Done => "feasible".into(),
            TrialStatus::Infeasible => format!(
                "infeasible ({:.1}% over)",
                t.violation.unwrap_or(0.0) * 100.0
            ),
            s => s.as_str().into(),
        },
        layout_summary(&t.arch),
    ]
}

fn trial_head(metric: &str, per_image: bool) -> Vec<String> {
    [
        "trial",
        "hash",
        "params",
        "MACs",
        if per_image {
            "time per image (s)"
        } else {
            "latency (ms)"
        },
        &format!("quality: {metric}"),
        "status",
        "blocks",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn front_table(input: &ReportInput, results: &StudyResults) -> Table {
    let per_image = input.config.latency.per_image();
    Table {
        head: trial_head(&input.metric(), per_image),
        rows: results
            .front
            .iter()
            .map(|t| trial_row(t, format!("#{}", t.number), results.knee, per_image))
            .collect(),
    }
}

fn references_table(input: &ReportInput) -> Table {
    let per_image = input.config.latency.per_image();
    let mut head = trial_head(&input.metric(), per_image);
    head[0] = "reference".into();
    Table {
        head,
        rows: input
            .references
            .iter()
            .map(|t| trial_row(t, reference_name(t), None, per_image))
            .collect(),
    }
}

fn failures_table(input: &ReportInput) -> Table {
    Table {
        head: vec!["trial".into(), "hash".into(), "reason".into()],
        rows: failures(&input.trials)
            .into_iter()
            .chain(failures(&input.references))
            .map(|t| {
                let who = if t.study.ends_with(unas_search::engine::REFERENCES_SUFFIX) {
                    format!("ref {}", reference_name(t))
                } else {
                    format!("#{}", t.number)
                };
                vec![
                    who,
                    t.hash.chars().take(12).collect(),
                    t.error.clone().unwrap_or_else(|| "unknown".into()),
                ]
            })
            .collect(),
    }
}

/// Printed under every report whose quality axis is the short-training proxy: its ranking of
/// architectures has not passed the calibration against longer training yet. Remove it when
/// `docs/quality-calibration.md` reports a passing τ.
pub const PROXY_CAVEAT: &str = "**Caveat:** the quality axis is the short-training proxy of \
     docs/quality.md. Its ranking of architectures has not passed the calibration against longer \
     training yet (docs/quality-calibration.md: a single training seed decides more of the score \
     than the architecture does), so the order of the front along the quality axis is \
     provisional; the latency axis is not affected.";

fn outcome_lines(input: &ReportInput, results: &StudyResults) -> Vec<String> {
    let counts: Vec<String> = results
        .counts
        .iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect();
    let finished = input.trials.iter().filter(|t| t.status.is_final()).count();
    let mut lines = vec![format!(
        "{finished} of {} trials final ({}).",
        input.config.trials,
        if counts.is_empty() {
            "none yet".into()
        } else {
            counts.join(", ")
        }
    )];
    if results.feasible {
        lines.push(format!(
            "Hypervolume {:.4} (reference point: {} ms{}, quality {:.4}); knee: {}.",
            results.hypervolume,
            results.reference[0],
            if input.config.latency.per_image() {
                " per image"
            } else {
                ""
            },
            results.reference[1],
            results
                .knee
                .map_or("none".into(), |k| format!("trial #{k}"))
        ));
    } else {
        lines.push(format!(
            "**No trial is feasible** under the {} ms budget and the caps: the table lists the \
             least-violating trials instead of a Pareto front.",
            input.config.latency.budget_ms
        ));
    }
    if let Some(d) = input
        .trials
        .iter()
        .find_map(|t| quality_details(t).map(|q| q.1))
    {
        if !d.is_empty() {
            let keys: Vec<&String> = d.keys().collect();
            lines.push(format!(
                "Quality details stored per trial: {}.",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    lines.extend(time_to_image_lines(input, results));
    lines.extend(objective_lines(input));
    lines
}

/// A time-to-image study: what the latency axis prices, and the knee against each reference
/// at its step count (seconds per image, speed-up, quality).
fn time_to_image_lines(input: &ReportInput, results: &StudyResults) -> Vec<String> {
    let l = &input.config.latency;
    if !l.per_image() {
        return Vec::new();
    }
    let mut lines =
        vec![format!(
        "Time to an image: the sampling step count is a knob ({}); each candidate's latency is \
         per image — its U-Net step × steps plus the pipeline's parts around them ({}) — and \
         its quality is measured at its own step count; references at {} steps.",
        l.step_choices()
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        l.image_parts.as_ref().map_or("not resolved".into(), |p| format!(
            "{:.3} ms per call for {} image(s), {:.3} ms per step beside the U-Net: {}",
            p.fixed_ms, p.images, p.step_extra_ms, p.source
        )),
        l.reference_step_count().unwrap_or(50),
    )];
    if input.config.quality.objective == unas_evaluator::quality::proxy::Objective::SupernetPaired {
        lines.push(
            "**Caveat:** the paired distance does not price the step count consistently: on \
             some supernets fewer steps land *closer* to the largest network's 50-step samples \
             (docs/supernet.md, seventeenth and eighteenth readings), so a front at few steps \
             is not evidence of quality at few steps, and its calibration is at 50 steps only."
                .into(),
        );
    }
    let knee = results
        .knee
        .and_then(|n| input.trials.iter().find(|t| t.number == n));
    if let Some(k) = knee {
        for r in &input.references {
            let (Some(kl), Some(rl)) = (k.latency_ms, r.latency_ms) else {
                continue;
            };
            lines.push(format!(
                "Knee #{} ({} steps): {:.4} s per image, quality {} (lower is better) — against {} at {} steps: \
                 {:.4} s per image, quality {}: {:.2}x {} per image.",
                k.number,
                k.arch.sampling_steps.map_or("–".into(), |s| s.to_string()),
                kl / 1e3,
                opt_f(k.quality, 4),
                reference_name(r),
                r.arch.sampling_steps.map_or("–".into(), |s| s.to_string()),
                rl / 1e3,
                opt_f(r.quality, 4),
                if kl <= rl { rl / kl } else { kl / rl },
                if kl <= rl { "faster" } else { "slower" },
            ));
        }
    }
    lines
}

/// What the report says about the quality objective: a test fixture's warning, the supernet
/// objective's calibration (τ against the ground truth, targets met or missed), or the proxy's
/// caveat (Markdown emphasis).
pub(crate) fn objective_lines(input: &ReportInput) -> Vec<String> {
    if input.metric().contains("test-fixture") {
        vec![
            "**Warning:** these quality numbers come from a synthetic TEST FIXTURE, not from a \
             quality metric."
                .into(),
        ]
    } else if input.config.quality.objective.uses_supernets() {
        calibration_lines(&input.config.quality, input.config.latency.per_image())
    } else {
        vec![PROXY_CAVEAT.into()]
    }
}

/// What the report says about a supernet objective: its name and, from `quality.calibration`,
/// its agreement with the ground truth and the calibration targets it meets or misses.
fn calibration_lines(
    q: &unas_evaluator::quality::proxy::ProxyConfig,
    per_image: bool,
) -> Vec<String> {
    use unas_evaluator::quality::calibration::{read_summary, unmet_targets, NOISE_CEILING_ROW};
    let name = q.objective_name();
    let what = if q.objective == unas_evaluator::quality::proxy::Objective::SupernetPaired {
        format!(
            "the relative squared distance of each candidate's samples ({} DDIM steps, weights \
             inherited from its topology's trained supernet) to the supernet's largest \
             network's (50 steps), from the same prompts and noise",
            if per_image {
                "its own number of".to_string()
            } else {
                q.paired_steps.to_string()
            }
        )
    } else {
        format!(
            "the validation loss of each candidate with the weights it inherits from its \
             topology's trained supernet{}",
            if name.starts_with("supernet-finetune") {
                format!(
                    ", after {} fine-tuning steps with the same batches, timesteps and noise \
                     for every candidate",
                    q.finetune_steps
                )
            } else {
                String::new()
            }
        )
    };
    let mut lines = vec![format!(
        "Quality objective: `{name}` — {what} (docs/supernet.md)."
    )];
    let Some(file) = &q.calibration else {
        lines.push(format!(
            "**Caveat:** no calibration is given for `{name}` (`quality.calibration`): how well \
             it ranks architectures is not stated."
        ));
        return lines;
    };
    let summary = match read_summary(file) {
        Ok(s) => s,
        Err(e) => {
            lines.push(format!("**Caveat:** calibration unreadable: {e}."));
            return lines;
        }
    };
    let Some(row) = summary.iter().find(|r| r.proxy == name) else {
        lines.push(format!(
            "**Caveat:** {} has no row for `{name}`: its ranking is not calibrated.",
            file.display()
        ));
        return lines;
    };
    let opt = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.3}"));
    let ceiling = summary
        .iter()
        .find(|r| r.proxy == NOISE_CEILING_ROW)
        .map_or("–".into(), |c| format!("{:.3}", c.tau));
    lines.push(format!(
        "Calibration ({}): Kendall τ {:.3} (95 % CI [{:.3}, {:.3}]), Spearman ρ {:.3} against \
         the ground-truth ranking of {} architectures trained from scratch; ICC over supernet \
         seeds {} (consistency {}); the ground truth's own noise ceiling τ {ceiling}.",
        file.display(),
        row.tau,
        row.tau_low,
        row.tau_high,
        row.spearman,
        row.n,
        opt(row.icc),
        opt(row.icc_consistency),
    ));
    match unmet_targets(&summary, &name) {
        Some(unmet) if unmet.is_empty() => {
            lines.push("It meets the calibration targets (docs/supernet.md).".into())
        }
        Some(unmet) => lines.push(format!(
            "**Caveat:** the calibration targets are not all met yet: {}; the order of the \
             front along the quality axis is provisional.",
            unmet.join("; ")
        )),
        None => {}
    }
    lines
}

fn front_heading(results: &StudyResults) -> &'static str {
    if results.feasible {
        "Pareto front (feasible, by latency)"
    } else {
        "Least-violating trials (no feasible trial)"
    }
}

/// The Markdown report.
pub(crate) fn markdown(input: &ReportInput, results: &StudyResults) -> String {
    let mut s = format!("# unas search report: `{}`\n\n", input.config.name);
    for l in outcome_lines(input, results) {
        s.push_str(&format!("{l}\n\n"));
    }
    s.push_str("![Pareto front](pareto.svg)\n\n");
    s.push_str(&format!("## {}\n\n", front_heading(results)));
    s.push_str(&front_table(input, results).markdown());
    s.push_str("\n## Reference architectures\n\n");
    if input.references.is_empty() {
        s.push_str("None configured (`references` in the study file).\n");
    } else {
        s.push_str(&references_table(input).markdown());
    }
    s.push_str("\n## Hypervolume over trials\n\n![hypervolume](hypervolume.svg)\n\n");
    s.push_str("## Block composition\n\n![composition](composition.svg)\n\n");
    if let Some(g) = &input.samples {
        s.push_str(&format!("## Samples\n\n{}\n\n", g.how));
        for grid in &g.grids {
            s.push_str(&format!(
                "{}: ![{0}](samples/{})\n\n",
                grid.label, grid.file
            ));
        }
        s.push_str("Prompts, left to right:\n\n");
        for (i, p) in g.prompts.iter().enumerate() {
            s.push_str(&format!("{}. {p}\n", i + 1));
        }
        s.push('\n');
    }
    s.push_str("## Failures\n\n");
    let f = failures_table(input);
    if f.rows.is_empty() {
        s.push_str("None.\n");
    } else {
        s.push_str(&f.markdown());
    }
    s.push_str("\n## Study settings\n\n");
    s.push_str(&settings_table(input).markdown());
    s
}

/// Strips an XML declaration so the SVG can be inlined in HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:13px}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f2f2f2}.plot svg{max-width:100%;height:auto}.warn{color:#a00}\
.samples{display:flex;flex-wrap:wrap;gap:12px}.samples figure{margin:0}\
.samples img{image-rendering:pixelated;border:1px solid #ccc}\
.samples figcaption{font-size:13px}";

/// The sample grids' section: one figure per grid (the PNG inline), then the prompts.
fn samples_html(input: &ReportInput) -> String {
    use base64::Engine;
    let Some(g) = &input.samples else {
        return "<p>None made (sample grids are drawn for supernet objectives by \
                <code>unas search</code>).</p>\n"
            .into();
    };
    let mut s = format!(
        "<p>{}</p>\n<div class=\"samples\" id=\"samples\">\n",
        esc(&g.how)
    );
    for grid in &g.grids {
        s.push_str(&format!(
            "<figure data-trial=\"{}\"><img alt=\"samples of {label}\" \
             src=\"data:image/png;base64,{}\"><figcaption>{label}</figcaption></figure>\n",
            grid.number.map_or(String::new(), |n| n.to_string()),
            base64::engine::general_purpose::STANDARD.encode(&grid.png),
            label = esc(&grid.label),
        ));
    }
    s.push_str("</div>\n<p>Prompts, left to right:</p>\n<ol>\n");
    for p in &g.prompts {
        s.push_str(&format!("<li>{}</li>\n", esc(p)));
    }
    s.push_str("</ol>\n");
    s
}

/// The self-contained HTML report (inline CSS and SVG, no scripts, no external resources).
pub(crate) fn html(
    input: &ReportInput,
    results: &StudyResults,
    svgs: &BTreeMap<&'static str, String>,
) -> String {
    let plot = |name: &str, alt: &str| {
        format!(
            "<figure class=\"plot\" id=\"{name}-plot\" aria-label=\"{}\">\n{}\n</figure>\n",
            esc(alt),
            svgs.get(name).map(|s| inline_svg(s)).unwrap_or("")
        )
    };
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>unas report: {name}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>unas search report: <code>{name}</code></h1>\n",
        name = esc(&input.config.name)
    );
    for l in outcome_lines(input, results) {
        let (class, l) = match l.strip_prefix("**") {
            Some(rest) => (" class=\"warn\"", rest.replacen("**", "", 1)),
            None => ("", l),
        };
        s.push_str(&format!("<p{class}>{}</p>\n", esc(&l)));
    }
    s.push_str("<h2>Pareto front</h2>\n");
    s.push_str(&plot("pareto", "latency vs quality"));
    s.push_str(&format!("<h2>{}</h2>\n", front_heading(results)));
    s.push_str(&front_table(input, results).html());
    s.push_str("<h2>Reference architectures</h2>\n");
    if input.references.is_empty() {
        s.push_str("<p>None configured.</p>\n");
    } else {
        s.push_str(&references_table(input).html());
    }
    s.push_str("<h2>Hypervolume over trials</h2>\n");
    s.push_str(&plot("hypervolume", "hypervolume over trials"));
    s.push_str("<h2>Block composition</h2>\n");
    s.push_str(&plot("composition", "blocks of the Pareto architectures"));
    s.push_str("<h2>Samples</h2>\n");
    s.push_str(&samples_html(input));
    s.push_str("<h2>Failures</h2>\n");
    let f = failures_table(input);
    if f.rows.is_empty() {
        s.push_str("<p>None.</p>\n");
    } else {
        s.push_str(&f.html());
    }
    s.push_str("<h2>Study settings</h2>\n");
    s.push_str(&settings_table(input).html());
    s.push_str("</body>\n</html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use unas_evaluator::quality::proxy::{Objective, ProxyConfig};

    const HEADER: &str = "proxy,n,tau,tau_low,tau_high,spearman,icc,icc_consistency";

    fn lines_for(summary: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("summary.csv");
        std::fs::write(&file, summary).unwrap();
        let q = ProxyConfig {
            objective: Objective::SupernetFinetune,
            finetune_steps: 50,
            supernets: Some("sn".into()),
            calibration: Some(file),
            ..ProxyConfig::default()
        };
        calibration_lines(&q, false)
    }

    #[test]
    fn a_supernet_report_quotes_its_calibration_and_the_targets_it_misses() {
        let rows = |icc: &str, ceiling: &str| {
            format!(
                "{HEADER}\nmacs,12,0.2424,-0.3220,0.7241,0.3357,,\n\
                 params,12,0.0000,-0.6333,0.5714,0.0839,,\n\
                 supernet-finetune@50,12,0.6667,0.3559,0.9333,0.8392,{icc},0.9\n\
                 ground-truth-noise-ceiling,12,{ceiling},0.5,0.95,0.9,0.6,0.8\n"
            )
        };
        let l = lines_for(&rows("0.85", "0.8200"));
        assert!(l[0].contains("`supernet-finetune@50`"), "{l:?}");
        assert!(
            l[1].contains("Kendall τ 0.667 (95 % CI [0.356, 0.933])"),
            "{l:?}"
        );
        assert!(l[1].contains("noise ceiling τ 0.820"), "{l:?}");
        assert!(
            l[2].starts_with("It meets the calibration targets"),
            "{l:?}"
        );
        // ICC below 0.8 and a low ceiling: named in the caveat.
        let l = lines_for(&rows("-0.0420", "0.6970"));
        assert!(l[2].starts_with("**Caveat:**"), "{l:?}");
        assert!(l[2].contains("ICC(1) over supernet seeds -0.042"), "{l:?}");
        assert!(l[2].contains("noise ceiling 0.697"), "{l:?}");
        // A summary without the objective's row: uncalibrated.
        let l = lines_for(&format!("{HEADER}\nmacs,12,0.2,0.1,0.3,0.2,,\n"));
        assert!(
            l[1].contains("has no row for `supernet-finetune@50`"),
            "{l:?}"
        );
    }
}
