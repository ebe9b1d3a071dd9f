//! The plots, each drawn twice with plotters: into an SVG string and into an RGB buffer that
//! is encoded as PNG.

use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use unas_search::{StudyResults, TrialRecord, TrialStatus};

use crate::{reference_name, ReportInput};

/// A drawn plot: its base file name, SVG text and PNG bytes.
pub(crate) struct Plot {
    pub name: &'static str,
    pub svg: String,
    pub png: Vec<u8>,
}

const FONT: &str = "sans-serif";
static FONT_INIT: Once = Once::new();

/// Registers the bundled font (needed to lay out and rasterise text) once per process.
fn init_font() {
    FONT_INIT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The bundled font is valid; a failure would only drop text from the PNGs.
            let _ = plotters::style::register_font(FONT, style, bytes);
        }
    });
}

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Draws with `$f(&root, args…)` into SVG and PNG.
macro_rules! render {
    ($name:expr, $w:expr, $h:expr, $f:ident, $($arg:expr),*) => {{
        init_font();
        let (w, h): (u32, u32) = ($w, $h);
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            $f(&root, $($arg),*)?;
            root.present().map_err(err)?;
        }
        let mut buf = vec![0u8; (w as usize) * (h as usize) * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            $f(&root, $($arg),*)?;
            root.present().map_err(err)?;
        }
        Ok::<Plot, String>(Plot { name: $name, svg, png: encode_png(&buf, w, h)? })
    }};
}

/// Draws with `$f(&root, args…)` into an SVG string only.
macro_rules! render_svg {
    ($w:expr, $h:expr, $f:ident, $($arg:expr),*) => {{
        init_font();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, ($w, $h)).into_drawing_area();
            $f(&root, $($arg),*)?;
            root.present().map_err(err)?;
        }
        svg
    }};
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, String> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(err)?;
    Ok(out)
}

fn span(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Points of the Pareto plot, in data coordinates.
struct ParetoData {
    title: String,
    metric: String,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
    budget: f64,
    /// y at which trials without a quality score (infeasible, failed) are drawn.
    strip: f64,
    feasible: Vec<(f64, f64)>,
    unscored: Vec<(f64, f64)>,
    failed: Vec<(f64, f64)>,
    front: Vec<(f64, f64)>,
    knee: Option<(u64, f64, f64)>,
    /// (label, latency, quality or strip).
    references: Vec<(String, f64, f64)>,
    /// Every trial drawn, (number, latency, y): where the dashboard makes points clickable.
    trials: Vec<(u64, f64, f64)>,
    /// The x axis' words (per step in ms, or per image in s).
    x_desc: String,
}

/// A trial's point in a drawn plot: its number and pixel position (SVG user units).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Hit {
    pub number: u64,
    pub x: i32,
    pub y: i32,
}

fn pareto_data(input: &ReportInput, results: &StudyResults) -> ParetoData {
    // A time-to-image study's latencies are per image: drawn in seconds.
    let per_image = input.config.latency.per_image();
    let scale = if per_image { 1e-3 } else { 1.0 };
    let budget = input.config.latency.budget_ms * scale;
    let all = || input.trials.iter().chain(&input.references);
    let lat = |t: &TrialRecord| t.latency_ms.map(|l| l * scale);
    let (xlo, xhi) = span(all().filter_map(lat).chain([budget])).unwrap_or((0.0, budget.max(1e-3)));
    let xpad = ((xhi - xlo) * 0.06).max(xhi.abs() * 0.02).max(1e-3);
    let (ylo, yhi) = span(all().filter_map(|t| t.quality)).unwrap_or((0.0, 1.0));
    let ypad = ((yhi - ylo) * 0.08).max(yhi.abs() * 0.02).max(1e-3);
    let strip = yhi + 2.0 * ypad;
    let mut feasible = Vec::new();
    let mut unscored = Vec::new();
    let mut failed = Vec::new();
    let mut trials = Vec::new();
    for t in &input.trials {
        let Some(x) = lat(t) else { continue };
        let y = match (t.status, t.quality) {
            (TrialStatus::Done, Some(q)) => (feasible.push((x, q)), q).1,
            (TrialStatus::Failed, _) => (failed.push((x, strip)), strip).1,
            (TrialStatus::Infeasible, _) => (unscored.push((x, strip)), strip).1,
            _ => continue,
        };
        trials.push((t.number, x, y));
    }
    let front = if results.feasible {
        results
            .front
            .iter()
            .filter_map(|t| Some((lat(t)?, t.quality?)))
            .collect()
    } else {
        Vec::new()
    };
    let knee = results.knee.and_then(|n| {
        let t = input.trials.iter().find(|t| t.number == n)?;
        Some((n, lat(t)?, t.quality?))
    });
    let references = input
        .references
        .iter()
        .filter_map(|t| {
            let x = lat(t)?;
            let (y, label) = match (t.status, t.quality) {
                (TrialStatus::Done, Some(q)) => (q, reference_name(t)),
                (_, Some(q)) => (q, format!("{} (over budget)", reference_name(t))),
                _ => (strip, format!("{} (not scored)", reference_name(t))),
            };
            Some((label, x, y))
        })
        .collect();
    ParetoData {
        title: format!(
            "{}: latency vs quality ({} trials)",
            input.config.name,
            input.trials.len()
        ),
        metric: input.metric(),
        x_desc: if per_image {
            "time per image (s)".into()
        } else {
            "latency per denoising step (ms)".into()
        },
        x: (xlo - xpad)..(xhi + xpad),
        y: (ylo - ypad)..(strip + ypad),
        budget,
        strip,
        feasible,
        unscored,
        failed,
        front,
        knee,
        references,
        trials,
    }
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn draw_pareto<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    d: &ParetoData,
) -> Result<Vec<Hit>, String> {
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(root)
        .caption(&d.title, (FONT, 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(d.x.clone(), d.y.clone())
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc(d.x_desc.as_str())
        .y_desc(format!(
            "quality: {} (lower is better)",
            shorten(d.metric.split('[').next().unwrap_or("quality"), 24)
        ))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let grey = RGBColor(150, 150, 150);
    let blue = RGBColor(40, 90, 200);
    let red = RGBColor(210, 40, 40);
    let green = RGBColor(20, 150, 60);
    // The strip for trials never scored.
    chart
        .draw_series(DashedLineSeries::new(
            vec![(d.x.start, d.strip), (d.x.end, d.strip)],
            3,
            5,
            grey.mix(0.5).stroke_width(1),
        ))
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(Text::new(
            "not trained (over a constraint) / failed",
            (d.x.start, d.strip),
            (FONT, 12).into_font().color(&grey),
        )))
        .map_err(err)?;
    chart
        .draw_series(
            d.unscored
                .iter()
                .map(|&p| Cross::new(p, 4, grey.stroke_width(1))),
        )
        .map_err(err)?
        .label(format!("infeasible ({})", d.unscored.len()))
        .legend(move |(x, y)| Cross::new((x, y), 4, grey.stroke_width(1)));
    if !d.failed.is_empty() {
        chart
            .draw_series(
                d.failed
                    .iter()
                    .map(|&p| Cross::new(p, 4, red.stroke_width(2))),
            )
            .map_err(err)?
            .label(format!("failed ({})", d.failed.len()))
            .legend(move |(x, y)| Cross::new((x, y), 4, red.stroke_width(2)));
    }
    chart
        .draw_series(
            d.feasible
                .iter()
                .map(|&p| Circle::new(p, 3, blue.mix(0.55).filled())),
        )
        .map_err(err)?
        .label(format!("feasible ({})", d.feasible.len()))
        .legend(move |(x, y)| Circle::new((x, y), 3, blue.mix(0.55).filled()));
    if !d.front.is_empty() {
        chart
            .draw_series(LineSeries::new(d.front.clone(), red.stroke_width(2)))
            .map_err(err)?
            .label(format!("Pareto front ({})", d.front.len()))
            .legend(move |(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], red));
        chart
            .draw_series(d.front.iter().map(|&p| Circle::new(p, 4, red.filled())))
            .map_err(err)?;
    }
    chart
        .draw_series(DashedLineSeries::new(
            vec![(d.budget, d.y.start), (d.budget, d.y.end)],
            8,
            5,
            BLACK.stroke_width(1),
        ))
        .map_err(err)?
        .label(format!("budget {} ms", d.budget))
        .legend(|(x, y)| PathElement::new(vec![(x - 8, y), (x + 8, y)], BLACK));
    if let Some((n, x, y)) = d.knee {
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 8, red.stroke_width(2))
                    + Text::new(format!("knee #{n}"), (10, 6), (FONT, 13)),
            ))
            .map_err(err)?;
    }
    if !d.references.is_empty() {
        chart
            .draw_series(d.references.iter().map(|(label, x, y)| {
                // Labels of points in the right half go to their left, so they stay inside.
                let right = *x > (d.x.start + d.x.end) / 2.0;
                let (dx, h) = if right {
                    (-9, HPos::Right)
                } else {
                    (9, HPos::Left)
                };
                let style = TextStyle::from((FONT, 13).into_font())
                    .color(&green)
                    .pos(Pos::new(h, VPos::Bottom));
                EmptyElement::at((*x, *y))
                    + TriangleMarker::new((0, 0), 7, green.filled())
                    + Text::new(label.clone(), (dx, -6), style)
            }))
            .map_err(err)?
            .label("reference archs")
            .legend(move |(x, y)| TriangleMarker::new((x, y), 6, green.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(grey)
        .label_font((FONT, 12))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    Ok(d.trials
        .iter()
        .map(|&(number, x, y)| {
            let (x, y) = chart.backend_coord(&(x, y));
            Hit { number, x, y }
        })
        .collect())
}

/// `pareto.svg/png`.
pub(crate) fn pareto(input: &ReportInput, results: &StudyResults) -> Result<Plot, String> {
    let d = pareto_data(input, results);
    render!("pareto", 900, 600, draw_pareto, &d)
}

/// The Pareto plot as SVG only, with each trial's point in it (the dashboard).
pub(crate) fn pareto_svg(
    input: &ReportInput,
    results: &StudyResults,
) -> Result<(String, Vec<Hit>), String> {
    init_font();
    let d = pareto_data(input, results);
    let mut svg = String::new();
    let hits = {
        let root = SVGBackend::with_string(&mut svg, (900, 600)).into_drawing_area();
        let hits = draw_pareto(&root, &d)?;
        root.present().map_err(err)?;
        hits
    };
    Ok((svg, hits))
}

/// The hypervolume and composition plots as SVG only (the dashboard): the report's
/// drawings, without their PNGs.
pub(crate) fn other_svgs(
    input: &ReportInput,
    results: &StudyResults,
) -> Result<(String, String), String> {
    let (curve, title) = hypervolume_args(input, results);
    let hv = render_svg!(800, 420, draw_hypervolume, &curve, &title);
    let (cols, rows, title, w, h) = composition_args(input, results);
    let comp = render_svg!(w, h, draw_composition, &cols, &rows, title);
    Ok((hv, comp))
}

fn draw_hypervolume<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curve: &[(u64, f64)],
    title: &str,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let n = curve.last().map_or(1, |c| c.0 + 1).max(1) as f64;
    let hi = curve.iter().map(|c| c.1).fold(0.0_f64, f64::max);
    let hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n, 0.0..hi)
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc("trial")
        .y_desc("hypervolume (ms × quality)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let blue = RGBColor(40, 90, 200);
    chart
        .draw_series(LineSeries::new(
            curve.iter().map(|&(t, h)| (t as f64, h)),
            blue.stroke_width(2),
        ))
        .map_err(err)?;
    Ok(())
}

/// `hypervolume.svg/png`.
pub(crate) fn hypervolume(input: &ReportInput, results: &StudyResults) -> Result<Plot, String> {
    let (curve, title) = hypervolume_args(input, results);
    render!("hypervolume", 800, 420, draw_hypervolume, &curve, &title)
}

fn hypervolume_args(input: &ReportInput, results: &StudyResults) -> (Vec<(u64, f64)>, String) {
    let curve = input.hypervolume_curve();
    let title = if results.feasible {
        format!(
            "hypervolume after each trial (reference: {} ms, quality {:.4})",
            results.reference[0], results.reference[1]
        )
    } else {
        "hypervolume after each trial (no feasible trial yet: 0)".to_string()
    };
    (curve, title)
}

/// One row of the composition grid.
struct Row {
    label: String,
    cells: Vec<Option<(usize, usize)>>,
}

fn composition_rows(input: &ReportInput, results: &StudyResults) -> (Vec<String>, Vec<Row>) {
    let mut archs: Vec<(String, &TrialRecord)> = results
        .front
        .iter()
        .map(|t| {
            let q = t.quality.map_or(String::new(), |q| format!(", q {q:.3}"));
            let l = t
                .latency_ms
                .map_or(String::new(), |l| format!(", {l:.2} ms"));
            (format!("#{}{l}{q}", t.number), t)
        })
        .collect();
    for r in &input.references {
        archs.push((format!("ref {}", reference_name(r)), r));
    }
    let stages = archs
        .iter()
        .map(|(_, t)| t.arch.down.len())
        .max()
        .unwrap_or(0);
    let mut cols: Vec<String> = (0..stages).map(|i| format!("down {i}")).collect();
    cols.push("mid".into());
    cols.extend((0..stages).map(|i| format!("up {i}")));
    let rows = archs
        .into_iter()
        .map(|(label, t)| {
            let a = &t.arch;
            let mut cells: Vec<Option<(usize, usize)>> = (0..stages)
                .map(|i| a.down.get(i).map(|d| (d.resnets, d.attentions)))
                .collect();
            cells.push(Some((a.mid.resnets, a.mid.attentions)));
            cells.extend((0..stages).map(|i| a.up.get(i).map(|u| (u.resnets, u.attentions))));
            Row { label, cells }
        })
        .collect();
    (cols, rows)
}

fn draw_composition<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cols: &[String],
    rows: &[Row],
    title: &str,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let center = Pos::new(HPos::Center, VPos::Center);
    let left = Pos::new(HPos::Left, VPos::Center);
    let text = |s: &str, x: i32, y: i32, size: i32, pos: Pos| {
        root.draw(&Text::new(
            s.to_string(),
            (x, y),
            TextStyle::from((FONT, size).into_font()).pos(pos),
        ))
        .map_err(err)
    };
    text(title, 12, 16, 17, left)?;
    text(
        "R = ResNets, A = attentions per block; darker = more layers",
        12,
        40,
        12,
        left,
    )?;
    let (x0, y0, cw, ch) = (250, 70, 74, 26);
    for (j, c) in cols.iter().enumerate() {
        text(c, x0 + j as i32 * cw + cw / 2, y0 - 10, 12, center)?;
    }
    if rows.is_empty() {
        text("no architecture to show yet", x0, y0 + 20, 14, left)?;
    }
    let most = rows
        .iter()
        .flat_map(|r| r.cells.iter().flatten())
        .map(|(r, a)| r + a)
        .max()
        .unwrap_or(1)
        .max(1);
    for (i, row) in rows.iter().enumerate() {
        let y = y0 + i as i32 * ch;
        text(&row.label, 12, y + ch / 2, 12, left)?;
        for (j, cell) in row.cells.iter().enumerate() {
            let x = x0 + j as i32 * cw;
            let Some((r, a)) = cell else { continue };
            let t = (r + a) as f64 / most as f64;
            let shade = |c: f64| (255.0 - t * (255.0 - c)) as u8;
            let fill = RGBColor(shade(90.0), shade(140.0), shade(220.0));
            root.draw(&Rectangle::new(
                [(x + 1, y + 1), (x + cw - 1, y + ch - 1)],
                fill.filled(),
            ))
            .map_err(err)?;
            let fg = if t > 0.6 { WHITE } else { BLACK };
            root.draw(&Text::new(
                format!("{r}R {a}A"),
                (x + cw / 2, y + ch / 2),
                (FONT, 12).into_font().color(&fg).pos(center),
            ))
            .map_err(err)?;
        }
    }
    Ok(())
}

/// `composition.svg/png`.
pub(crate) fn composition(input: &ReportInput, results: &StudyResults) -> Result<Plot, String> {
    let (cols, rows, title, w, h) = composition_args(input, results);
    render!("composition", w, h, draw_composition, &cols, &rows, title)
}

type CompositionArgs = (Vec<String>, Vec<Row>, &'static str, u32, u32);

fn composition_args(input: &ReportInput, results: &StudyResults) -> CompositionArgs {
    let (cols, rows) = composition_rows(input, results);
    let title = if results.feasible {
        "Blocks of the Pareto architectures (and the reference archs)"
    } else {
        "Blocks of the least-violating architectures (no feasible trial) and the reference archs"
    };
    let w = (250 + cols.len() as u32 * 74 + 20).max(700);
    let h = 70 + rows.len().max(1) as u32 * 26 + 20;
    (cols, rows, title, w, h)
}

fn draw_loss_curve<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    losses: &[f32],
    smooth: &[f64],
    title: &str,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let n = losses.len().max(2) as f64;
    let finite = || {
        losses
            .iter()
            .map(|&l| l as f64)
            .filter(|l| l.is_finite() && *l > 0.0)
    };
    let (lo, hi) = span(finite()).unwrap_or((1e-3, 1.0));
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else {
        (lo * 0.5, lo * 2.0)
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(1.0..n, (lo..hi).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .light_line_style(WHITE.mix(0.0))
        .x_desc("step")
        .y_desc("training loss (log scale)")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let grey = RGBColor(170, 180, 200);
    chart
        .draw_series(LineSeries::new(
            losses
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite() && **l > 0.0)
                .map(|(i, &l)| ((i + 1) as f64, l as f64)),
            grey.stroke_width(1),
        ))
        .map_err(err)?;
    let blue = RGBColor(40, 90, 200);
    chart
        .draw_series(LineSeries::new(
            smooth
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_finite() && **l > 0.0)
                .map(|(i, &l)| ((i + 1) as f64, l)),
            blue.stroke_width(2),
        ))
        .map_err(err)?;
    Ok(())
}

/// The loss of every step (grey) and its mean over a trailing window of 5 % of the steps
/// (blue), on a log scale: `loss.svg` / `loss.png` of `unas train`.
pub(crate) fn loss_curve(losses: &[f32], title: &str) -> Result<Plot, String> {
    let window = (losses.len() / 20).max(1);
    let smooth: Vec<f64> = (0..losses.len())
        .map(|i| {
            let w = &losses[i + 1 - window.min(i + 1)..=i];
            w.iter().map(|&l| l as f64).sum::<f64>() / w.len() as f64
        })
        .collect();
    render!("loss", 800, 420, draw_loss_curve, losses, &smooth, title)
}
