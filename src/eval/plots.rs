//! PNG charts with plotters: a run's learning curves (train loss, evaluation metrics, learning rate
//! against the step) and the spread of a metric over seeds. The font is DejaVu Sans embedded in
//! the binary, so charts render the same on a machine without any fonts installed.
use crate::error::{Error, Result};
use plotters::prelude::*;
use serde_json::Value;
use std::path::Path;
use std::sync::Once;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is a valid TTF; failure here would be a packaging bug, and charts would
        // still be drawn without text.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(path, format!("cannot draw chart: {e}"))
}

/// Draws into a temporary file beside `png`, then renames it into place, so a chart is either
/// whole or absent.
fn atomic_png(png: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = png.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".{}.{}.tmp.png", png.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default(), std::process::id()));
    let drawn = draw(&tmp);
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return drawn;
    }
    std::fs::rename(&tmp, png).map_err(|e| Error::io(png, e))
}

/// A named series of (step, value) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Series of a `train_log.jsonl`: `loss`, `learning_rate`, and every numeric `eval_*` metric.
pub fn read_log(path: &Path) -> Result<Vec<Series>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut series: Vec<Series> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| Error::data(path, i + 1, format!("not JSON: {e}")))?;
        let Some(step) = v.get("step").and_then(Value::as_f64) else { continue };
        for (k, x) in v.as_object().into_iter().flatten() {
            let keep = k == "loss" || k == "learning_rate" || (k.starts_with("eval_") && !k.contains("samples") && !k.contains("runtime"));
            if let (true, Some(x)) = (keep, x.as_f64()) {
                match series.iter_mut().find(|s| &s.name == k) {
                    Some(s) => s.points.push((step, x)),
                    None => series.push(Series { name: k.clone(), points: vec![(step, x)] }),
                }
            }
        }
    }
    Ok(series)
}

/// The range an axis shows for `values`: their span plus 5% each side; a single value (or equal
/// values) gets a span of its own size, so one point is drawn mid-axis with readable ticks.
pub fn axis_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = if hi > lo { hi - lo } else { lo.abs().max(1e-3) * 0.2 };
    (lo - 0.05 * span, hi + 0.05 * span)
}

/// A tick label with just enough digits that ticks on an axis from `lo` to `hi` (at most about
/// ten of them) read differently: decimals from the tick spacing, scientific notation for axes
/// of very small or very large values (learning rates).
pub fn tick_label(v: f64, lo: f64, hi: f64) -> String {
    let spacing = (hi - lo).abs() / 10.0;
    if !(spacing.is_finite() && spacing > 0.0) {
        return format!("{v}");
    }
    let spacing_exp = spacing.log10().floor() as i32;
    let magnitude = lo.abs().max(hi.abs());
    if !(1e-2..1e5).contains(&magnitude) {
        let digits = (magnitude.log10().floor() as i32 - spacing_exp).clamp(0, 8) as usize;
        return format!("{v:.digits$e}");
    }
    let decimals = (-spacing_exp).clamp(0, 10) as usize;
    format!("{v:.decimals$}")
}

/// Draws the three learning-curve panels of a run into `png`.
pub fn learning_curves(log: &Path, png: &Path, title: &str) -> Result<()> {
    register_font();
    let series = read_log(log)?;
    atomic_png(png, |tmp| draw_curves(&series, tmp, png, title))
}

fn draw_curves(series: &[Series], file: &Path, png: &Path, title: &str) -> Result<()> {
    let panels: [(&str, Vec<&Series>); 3] = [
        ("train loss", series.iter().filter(|s| s.name == "loss").collect()),
        ("evaluation", series.iter().filter(|s| s.name.starts_with("eval_") && !s.name.starts_with("eval_loss")).collect()),
        ("learning rate", series.iter().filter(|s| s.name == "learning_rate").collect()),
    ];
    let root = BitMapBackend::new(file, (1500, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(png, e))?;
    let root = root.titled(title, (FONT, 22)).map_err(|e| plot_err(png, e))?;
    // Every panel spans the whole run (step 0 to the last step logged), so a lone evaluation is
    // drawn where it happened rather than on an axis of its own.
    let last_step = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(1.0, f64::max);
    let (x0, x1) = (0.0, last_step);
    for ((name, group), area) in panels.iter().zip(root.split_evenly((1, 3))) {
        if group.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        let (y0, y1) = axis_range(group.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
        let mut chart = ChartBuilder::on(&area)
            .caption(*name, (FONT, 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| plot_err(png, e))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .label_style((FONT, 13))
            // Steps are whole numbers: whole ticks print without decimals.
            .x_label_formatter(&|x| if x.fract() == 0.0 { format!("{x:.0}") } else { tick_label(*x, x0, x1) })
            .y_label_formatter(&|y| tick_label(*y, y0, y1))
            .draw()
            .map_err(|e| plot_err(png, e))?;
        for (i, s) in group.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let line = LineSeries::new(s.points.iter().copied(), color.stroke_width(2));
            let drawn = chart.draw_series(line).map_err(|e| plot_err(png, e))?;
            drawn.label(s.name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
            if s.points.len() < 30 {
                chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| plot_err(png, e))?;
            }
        }
        if group.len() > 1 || name.starts_with("eval") {
            chart
                .configure_series_labels()
                .label_font((FONT, 12))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| plot_err(png, e))?;
        }
    }
    root.present().map_err(|e| plot_err(png, e))
}

/// One dot per seed and a bar for the mean, per task: how much a score moves with the seed.
pub fn seed_spread(rows: &[(String, Vec<f64>)], png: &Path, y_desc: &str) -> Result<()> {
    register_font();
    let all = rows.iter().flat_map(|(_, v)| v.iter().copied());
    if all.clone().next().is_none() {
        return Err(Error::Invalid("no scores to plot".into()));
    }
    atomic_png(png, |tmp| draw_spread(rows, tmp, png, y_desc))
}

fn draw_spread(rows: &[(String, Vec<f64>)], file: &Path, png: &Path, y_desc: &str) -> Result<()> {
    let (y0, y1) = axis_range(rows.iter().flat_map(|(_, v)| v.iter().copied()));
    let pad = (y1 - y0).max(1.0) * 0.1;
    let root = BitMapBackend::new(file, (200 + 110 * rows.len() as u32, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(png, e))?;
    let labels: Vec<String> = rows.iter().map(|(t, _)| t.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption("score over seeds", (FONT, 20))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(-0.5f64..rows.len() as f64 - 0.5, (y0 - pad)..(y1 + pad))
        .map_err(|e| plot_err(png, e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(rows.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 { labels.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
        })
        .y_desc(y_desc)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| plot_err(png, e))?;
    for (i, (_, values)) in rows.iter().enumerate() {
        let x = i as f64;
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        chart
            .draw_series(std::iter::once(PathElement::new(vec![(x - 0.3, mean), (x + 0.3, mean)], BLACK.stroke_width(2))))
            .map_err(|e| plot_err(png, e))?;
        let dots = values.iter().enumerate().map(|(k, &v)| Circle::new((x - 0.15 + 0.3 * k as f64 / n, v), 5, BLUE.filled()));
        chart.draw_series(dots).map_err(|e| plot_err(png, e))?;
    }
    root.present().map_err(|e| plot_err(png, e))
}

/// A confusion matrix as a heat map: rows are true classes, columns predictions, each cell shaded
/// by its share of the row and labelled with its count.
pub fn confusion_matrix(png: &Path, labels: &[String], cm: &[Vec<usize>]) -> Result<()> {
    register_font();
    if labels.is_empty() || cm.len() != labels.len() {
        return Err(Error::Invalid("confusion matrix: one row per class expected".into()));
    }
    atomic_png(png, |tmp| draw_confusion(labels, cm, tmp, png))
}

fn draw_confusion(labels: &[String], cm: &[Vec<usize>], file: &Path, png: &Path) -> Result<()> {
    let k = labels.len();
    let side = (60 * k as u32).max(240);
    let root = BitMapBackend::new(file, (side + 180, side + 140)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(png, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("confusion matrix (rows: true, columns: predicted)", (FONT, 16))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..k as f64, 0f64..k as f64)
        .map_err(|e| plot_err(png, e))?;
    let name = |v: &f64| labels.get(v.floor() as usize).filter(|_| v.fract() > 0.4 && v.fract() < 0.6).cloned().unwrap_or_default();
    // The y axis runs upwards; row 0 is drawn at the top.
    let row_name = |v: &f64| labels.get(k.saturating_sub(1 + v.floor() as usize)).filter(|_| v.fract() > 0.4 && v.fract() < 0.6).cloned().unwrap_or_default();
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * k + 1)
        .y_labels(2 * k + 1)
        .x_label_formatter(&name)
        .y_label_formatter(&row_name)
        .label_style((FONT, 13))
        .draw()
        .map_err(|e| plot_err(png, e))?;
    for (i, row) in cm.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (j, &n) in row.iter().enumerate() {
            let share = n as f64 / total;
            let y = (k - 1 - i) as f64;
            let shade = RGBColor((255.0 * (1.0 - 0.8 * share)) as u8, (255.0 * (1.0 - 0.6 * share)) as u8, 255);
            chart.draw_series(std::iter::once(Rectangle::new([(j as f64, y), (j as f64 + 1.0, y + 1.0)], shade.filled()))).map_err(|e| plot_err(png, e))?;
            let text = Text::new(n.to_string(), (j as f64 + 0.4, y + 0.55), (FONT, 15).into_font().color(&BLACK));
            chart.draw_series(std::iter::once(text)).map_err(|e| plot_err(png, e))?;
        }
    }
    root.present().map_err(|e| plot_err(png, e))
}
