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

fn bounds(points: impl Iterator<Item = (f64, f64)> + Clone) -> ((f64, f64), (f64, f64)) {
    let fold = |f: fn(f64, f64) -> f64, init: f64, get: fn(&(f64, f64)) -> f64| points.clone().map(|p| get(&p)).fold(init, f);
    let (x0, x1) = (fold(f64::min, f64::INFINITY, |p| p.0), fold(f64::max, f64::NEG_INFINITY, |p| p.0));
    let (y0, y1) = (fold(f64::min, f64::INFINITY, |p| p.1), fold(f64::max, f64::NEG_INFINITY, |p| p.1));
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    ((x0, if x1 > x0 { x1 } else { x0 + 1.0 }), (y0 - pad, y1 + pad))
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
    for ((name, group), area) in panels.iter().zip(root.split_evenly((1, 3))) {
        let pts = group.iter().flat_map(|s| s.points.iter().copied());
        if pts.clone().next().is_none() {
            continue;
        }
        let ((x0, x1), (y0, y1)) = bounds(pts);
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
            .y_label_formatter(&|y| if y.abs() < 1e-2 && *y != 0.0 { format!("{y:.1e}") } else { format!("{y:.3}") })
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
    let (_, (y0, y1)) = bounds(rows.iter().flat_map(|(_, v)| v.iter().map(|&v| (0.0, v))));
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
