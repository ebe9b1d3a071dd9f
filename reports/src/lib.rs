//! unas-reports: what a study found, for people.
//!
//! - [`ReportInput`]: a study's settings, trials and reference archs, read from its store.
//! - [`write_report`]: `pareto.svg/png` (latency vs quality: feasible and infeasible trials,
//!   the budget line, the Pareto front, the knee, the reference archs), `hypervolume.svg/png`
//!   (hypervolume after each trial), `composition.svg/png` (ResNets and attentions per block of
//!   the Pareto archs), `report.md` and a self-contained `report.html` (inline SVG, no external
//!   resources).
//! - [`export`]: picks an architecture (`knee`, `fastest`, `best-under:MS`, a trial number) and
//!   writes it as a unas arch TOML and a diffusers `config.json`.
//! - [`training`]: a training run's loss curve and sample grid (`unas train`).
//! - [`dashboard`]: `unas dashboard`, the live read-only view of a running study (HTTP).
//!
//! A study with no feasible trial still reports: the tables then list the least-violating
//! trials. Text in the PNG plots is drawn with the bundled DejaVu Sans font
//! (`assets/DejaVuSans.ttf`, Bitstream Vera licence), so reports look the same on any machine.

#![warn(missing_docs)]

pub mod dashboard;
pub mod export;
mod plots;
pub mod samples;
mod text;
pub mod training;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use unas_search::objective::ObjectivesJson;
use unas_search::{SearchError, Study, StudyConfig, StudyResults, TrialRecord, TrialStatus};
use unas_space::UNetArch;

pub use export::{export, pick, ExportedFiles, Pick};
pub use samples::{SampleGrid, SampleGrids};

/// Errors of the report crate.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the study failed.
    #[error("{0}")]
    Search(#[from] SearchError),
    /// A file could not be written.
    #[error("{file}: {source}", file = .file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error("{file}: cannot draw the plot: {message}", file = .file.display())]
    Plot {
        /// The file being drawn.
        file: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A `--pick` value is malformed or names nothing in the study (bad input).
    #[error("pick `{pick}`: {message}")]
    Pick {
        /// The value given.
        pick: String,
        /// What is wrong.
        message: String,
    },
}

/// Everything a report shows, read from a study.
#[derive(Clone, Debug)]
pub struct ReportInput {
    /// The study's (stored) settings.
    pub config: StudyConfig,
    /// The search space's name.
    pub space_name: String,
    /// All trials, by number.
    pub trials: Vec<TrialRecord>,
    /// The reference archs' records (see [`StudyConfig::references`]).
    pub references: Vec<TrialRecord>,
    /// Sample grids of the front and the references (`RUN_DIR/samples/`), when made.
    pub samples: Option<SampleGrids>,
}

impl ReportInput {
    /// Reads a study's settings, trials and references from its store.
    /// With successive halving, each trial's and reference's quality is that of its highest
    /// finished rung (docs/halving.md).
    pub fn from_study(study: &mut Study) -> Result<Self, SearchError> {
        use unas_search::engine::halving::with_top_rungs;
        let (trials, rungs) = (study.trials()?, study.rungs()?);
        let (references, reference_rungs) = (study.references()?, study.reference_rungs()?);
        Ok(Self {
            config: study.config().clone(),
            space_name: study.space().name.clone(),
            trials: with_top_rungs(&trials, &rungs),
            references: with_top_rungs(&references, &reference_rungs),
            samples: None,
        })
    }

    /// Reads the study in a run directory, with its sample grids when it has them.
    pub fn from_run_dir(dir: &Path) -> Result<Self, SearchError> {
        let mut study = Study::open(dir)?;
        Ok(Self {
            samples: SampleGrids::read(dir),
            ..Self::from_study(&mut study)?
        })
    }

    /// The study's results (Pareto front or least-violating trials, knee, hypervolume).
    pub fn results(&self) -> StudyResults {
        Study::results_of(&self.config, &self.trials)
    }

    /// The quality metric's label (from the first scored trial or reference), e.g.
    /// `fd[featurenet…; 128 samples]`; `quality` if nothing was scored.
    pub fn metric(&self) -> String {
        let label = self
            .trials
            .iter()
            .chain(&self.references)
            .find_map(|t| quality_details(t).map(|q| q.0))
            .unwrap_or_else(|| "quality".into());
        // A time-to-image study's candidates are scored at their own step counts: the label
        // names the score without one candidate's count.
        if self.config.latency.per_image() {
            time_to_image_metric(&label)
        } else {
            label
        }
    }

    /// Hypervolume of the feasible front of trials `0..=n` for each final trial `n`, under the
    /// final reference point (so the curve is comparable along the run).
    pub fn hypervolume_curve(&self) -> Vec<(u64, f64)> {
        let reference = self.results().reference;
        if !reference[1].is_finite() {
            return self
                .trials
                .iter()
                .filter(|t| t.status.is_final())
                .map(|t| (t.number, 0.0))
                .collect();
        }
        (0..self.trials.len())
            .filter(|&i| self.trials[i].status.is_final())
            .map(|i| {
                (
                    self.trials[i].number,
                    Study::hypervolume_of(&self.trials[..=i], reference),
                )
            })
            .collect()
    }
}

impl ReportInput {
    /// What priced the trials' latency: the configured model, and for `lut:*` models the
    /// table the trials name (`lut:auto` resolves to this machine's cached table) with its
    /// provenance when the file is still there.
    pub fn latency_model(&self) -> String {
        let model = &self.config.latency.model;
        if !model.starts_with("lut:") {
            return model.clone();
        }
        let source = self.trials.iter().chain(&self.references).find_map(|t| {
            let o: ObjectivesJson = serde_json::from_str(t.objectives.as_deref()?).ok()?;
            o.latency_source
        });
        let Some(source) = source else {
            return model.clone();
        };
        let file = source.strip_prefix("lut:").unwrap_or(&source);
        let mut out = if *model == source {
            model.clone()
        } else {
            format!("{model} → {source}")
        };
        if let Ok(t) = unas_evaluator::latency::lut::LookupTable::load(std::path::Path::new(file)) {
            let m = &t.measured;
            out.push_str(&format!(
                " (measured {} on {}",
                m.date,
                m.cpu.as_deref().unwrap_or(&m.device)
            ));
            if let Some(n) = m.threads {
                out.push_str(&format!(", {n} threads"));
            }
            if let Some(n) = m.noise {
                out.push_str(&format!(", host noise {:.1} %", n * 100.0));
            }
            if let Some(v) = &m.validation {
                out.push_str(&format!("; check: {v}"));
            }
            out.push(')');
        }
        out
    }
}

/// The quality metric label and details stored with a trial, if it was scored.
pub fn quality_details(t: &TrialRecord) -> Option<(String, BTreeMap<String, f64>)> {
    let o: ObjectivesJson = serde_json::from_str(t.objectives.as_deref()?).ok()?;
    let q = o.quality_result?;
    Some((q.metric, q.details))
}

/// A reference record's display name (its preset name or file).
pub fn reference_name(t: &TrialRecord) -> String {
    serde_json::from_str::<serde_json::Value>(&t.origin)
        .ok()
        .and_then(|v| v.get("name").and_then(|n| n.as_str()).map(String::from))
        .unwrap_or_else(|| {
            if t.arch.name.is_empty() {
                t.hash.clone()
            } else {
                t.arch.name.clone()
            }
        })
}

/// One line describing an arch's blocks, e.g.
/// `flexible, 4 stages: down 1R1A 2R2A 2R2A 2R0A | mid 5R2A | up 3R0A 3R3A 3R3A 3R3A`.
pub fn layout_summary(arch: &UNetArch) -> String {
    let layout = serde_json::to_value(arch.layout)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{:?}", arch.layout));
    let down: Vec<String> = arch
        .down
        .iter()
        .map(|d| format!("{}R{}A", d.resnets, d.attentions))
        .collect();
    let up: Vec<String> = arch
        .up
        .iter()
        .map(|u| format!("{}R{}A", u.resnets, u.attentions))
        .collect();
    let widths: Vec<String> = arch
        .down
        .iter()
        .map(|d| d.out_channels.to_string())
        .collect();
    format!(
        "{layout}, {} stages ({}): down {} | mid {}R{}A | up {}",
        arch.down.len(),
        widths.join("/"),
        down.join(" "),
        arch.mid.resnets,
        arch.mid.attentions,
        up.join(" ")
    )
}

/// The files [`write_report`] wrote.
#[derive(Clone, Debug)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
    /// The plots (SVG and PNG).
    pub plots: Vec<PathBuf>,
}

/// Writes the plots, `report.md` and `report.html` into `dir` (created if missing).
pub fn write_report(input: &ReportInput, dir: &Path) -> Result<ReportFiles, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        file: dir.to_path_buf(),
        source,
    })?;
    let results = input.results();
    let mut plots = Vec::new();
    let mut svgs = BTreeMap::new();
    let drawn = [
        ("pareto", plots::pareto(input, &results)),
        ("hypervolume", plots::hypervolume(input, &results)),
        ("composition", plots::composition(input, &results)),
    ];
    for (name, plot) in drawn {
        let plot = plot.map_err(|message| ReportError::Plot {
            file: dir.join(format!("{name}.svg")),
            message,
        })?;
        let svg_path = dir.join(format!("{}.svg", plot.name));
        let png_path = dir.join(format!("{}.png", plot.name));
        write(&svg_path, plot.svg.as_bytes())?;
        write(&png_path, &plot.png)?;
        plots.push(svg_path);
        plots.push(png_path);
        svgs.insert(plot.name, plot.svg);
    }
    let markdown = dir.join("report.md");
    write(&markdown, text::markdown(input, &results).as_bytes())?;
    let html = dir.join("report.html");
    write(&html, text::html(input, &results, &svgs).as_bytes())?;
    Ok(ReportFiles {
        markdown,
        html,
        plots,
    })
}

pub(crate) fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Io {
        file: path.to_path_buf(),
        source,
    })
}

/// Trials that failed, with their reasons.
pub fn failures(trials: &[TrialRecord]) -> Vec<&TrialRecord> {
    trials
        .iter()
        .filter(|t| t.status == TrialStatus::Failed)
        .collect()
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::synthetic;

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap()
    }

    #[test]
    fn writes_plots_markdown_and_html() {
        let input = synthetic(0.6);
        let r = input.results();
        assert!(r.feasible && !r.front.is_empty());
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(&input, dir.path()).unwrap();
        for name in ["pareto", "hypervolume", "composition"] {
            let svg = read(&dir.path().join(format!("{name}.svg")));
            assert!(svg.contains("<svg") && svg.contains("</svg>"), "{name}");
            let png = std::fs::read(dir.path().join(format!("{name}.png"))).unwrap();
            let img = image::load_from_memory(&png).unwrap().to_rgb8();
            let first = img.get_pixel(0, 0);
            assert!(img.pixels().any(|p| p != first), "{name}.png is blank");
        }
        assert_eq!(files.plots.len(), 6);
        let pareto = read(&dir.path().join("pareto.svg"));
        assert!(pareto.contains("Pareto front") && pareto.contains("budget"));
        assert!(pareto.contains("tiny-nas") && pareto.contains("knee #"));
        let md = read(&files.markdown);
        assert!(
            md.contains("## Pareto front (feasible, by latency)"),
            "{md}"
        );
        assert!(md.contains("fd[synthetic report test; 16 samples]"), "{md}");
        assert!(md.contains("| tiny-nas |"), "{md}");
        assert!(md.contains("diverged at step 3"), "{md}");
        assert!(md.contains("(knee)"), "{md}");
        // The proxy's ranking is not validated yet: every proxy-scored report says so.
        assert!(md.contains(crate::text::PROXY_CAVEAT), "{md}");
        assert!(md.contains("lut:configs/devices/cpu-tiny.lut.toml"), "{md}");
        // Every front trial is listed with its params and layout.
        for t in &r.front {
            assert!(md.contains(&format!("| #{}", t.number)), "{md}");
            let layout = layout_summary(&t.arch).replace('|', "\\|");
            assert!(md.contains(&layout), "{md}");
        }
        let html = read(&files.html);
        assert!(html.contains("id=\"pareto-plot\"") && html.contains("<svg"));
        assert!(!html.contains("<?xml") && !html.contains("src=\"http"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn no_feasible_trial_still_reports_least_violating() {
        let input = synthetic(0.0);
        let r = input.results();
        assert!(!r.feasible);
        assert!(!r.front.is_empty() && r.front.len() <= 5);
        let v: Vec<f64> = r.front.iter().map(|t| t.violation.unwrap()).collect();
        assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(&input, dir.path()).unwrap();
        let md = read(&files.markdown);
        assert!(md.contains("No trial is feasible"), "{md}");
        assert!(md.contains("Least-violating trials"), "{md}");
        assert!(md.contains(&format!("| #{}", r.front[0].number)), "{md}");
        assert!(read(&files.html).contains("No trial is feasible"));
        assert!(input.hypervolume_curve().iter().all(|h| h.1 == 0.0));
    }

    #[test]
    fn hypervolume_curve_never_decreases_and_ends_at_the_study_value() {
        let input = synthetic(0.8);
        let c = input.hypervolume_curve();
        assert_eq!(c.len(), input.trials.len());
        assert!(c.windows(2).all(|w| w[1].1 >= w[0].1), "{c:?}");
        let hv = input.results().hypervolume;
        assert!((c.last().unwrap().1 - hv).abs() < 1e-12 && hv > 0.0);
    }

    /// Debian's chromium (`apt-get install chromium`; .ci/run installs it).
    fn chromium() -> PathBuf {
        for c in ["chromium", "chromium-browser", "google-chrome"] {
            let ok = std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return PathBuf::from(c);
            }
        }
        panic!("this test needs a headless browser: apt-get install -y chromium (.ci/run does)");
    }

    /// Opens `html` in headless chromium: returns (DOM, stderr) and writes a screenshot.
    pub(crate) fn open_in_chromium(html: &Path, shot: &Path) -> (String, String) {
        let profile = tempfile::tempdir().unwrap();
        let url = format!("file://{}", html.canonicalize().unwrap().display());
        let run = |extra: &[String]| {
            let o = std::process::Command::new(chromium())
                .args([
                    "--headless",
                    "--disable-gpu",
                    "--no-sandbox",
                    "--enable-logging=stderr",
                    "--v=0",
                    &format!("--user-data-dir={}", profile.path().display()),
                ])
                .args(extra)
                .arg(&url)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            o
        };
        let dom = run(&["--dump-dom".to_string()]);
        run(&[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600".to_string(),
            "--hide-scrollbars".to_string(),
        ]);
        (
            String::from_utf8_lossy(&dom.stdout).into_owned(),
            String::from_utf8_lossy(&dom.stderr).into_owned(),
        )
    }

    /// Checks a report in chromium: no page errors, the Pareto plot in the DOM, a
    /// screenshot that is not blank.
    pub(crate) fn assert_opens_in_browser(html: &Path) {
        let dir = tempfile::tempdir().unwrap();
        let shot = dir.path().join("shot.png");
        let (dom, log) = open_in_chromium(html, &shot);
        for bad in ["Uncaught", "ERR_FILE_NOT_FOUND", "Failed to load resource"] {
            assert!(!log.contains(bad), "browser reported `{bad}`:\n{log}");
        }
        let i = dom
            .find("id=\"pareto-plot\"")
            .expect("the Pareto figure is in the DOM");
        let svg = &dom[i..];
        assert!(
            svg.contains("<svg") && svg.contains("Pareto front"),
            "{dom}"
        );
        let img = image::open(&shot).unwrap().to_rgb8();
        assert!(img.width() >= 800 && img.height() >= 800);
        let white = img.pixels().filter(|p| p.0 == [255, 255, 255]).count();
        let dark = img
            .pixels()
            .filter(|p| p.0.iter().all(|&c| c < 100))
            .count();
        let colored = img
            .pixels()
            .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60)
            .count();
        let n = img.pixels().count();
        assert!(white < n * 98 / 100, "screenshot is (nearly) blank");
        assert!(dark > 1000, "no text or axes drawn ({dark} dark pixels)");
        assert!(colored > 500, "no coloured plot marks ({colored} pixels)");
    }

    #[test]
    fn report_opens_in_headless_chromium() {
        let input = synthetic(0.6);
        let dir = tempfile::tempdir().unwrap();
        let files = write_report(&input, dir.path()).unwrap();
        assert_opens_in_browser(&files.html);
    }

    #[test]
    fn layout_summary_names_every_block() {
        let a = unas_space::load_arch("tiny-nas").unwrap();
        let s = layout_summary(&a);
        assert!(s.starts_with("flexible, "), "{s}");
        assert_eq!(s.matches('R').count(), 2 * a.down.len() + 1, "{s}");
    }
}

/// `supernet-paired@10[48 samples, …]` → `supernet-paired@K[48 samples, …] (K: each
/// candidate's sampling steps)`; a label without `@K` gets the note alone.
fn time_to_image_metric(label: &str) -> String {
    let (name, rest) = label.split_at(label.find('[').unwrap_or(label.len()));
    let name = match name.split_once('@') {
        Some((base, k)) if k.chars().all(|c| c.is_ascii_digit()) => format!("{base}@K"),
        _ => name.to_string(),
    };
    format!("{name}{rest} (at each candidate's sampling steps K)")
}

#[cfg(test)]
mod time_to_image_tests {
    #[test]
    fn labels_lose_one_candidates_step_count() {
        assert_eq!(
            super::time_to_image_metric("supernet-paired@10[48 samples; seed 1]"),
            "supernet-paired@K[48 samples; seed 1] (at each candidate's sampling steps K)"
        );
        assert_eq!(
            super::time_to_image_metric("fd[x]"),
            "fd[x] (at each candidate's sampling steps K)"
        );
    }
}
