//! The compression study's part of `finetune report` (the paper's §1.5: is a small model better
//! trained through a large one?). For every `bench_infer.json` under the report's paths, one table
//! of what shipping each model costs and scores — layers, int8, weights size, parameters, batch-1
//! latency, batch throughput, its dev metric — beside the task score over seeds of the runs it
//! stands for; and for each distilled student with a directly fine-tuned twin (same task, model
//! and layers, α = 0), a paired bootstrap of distilled − direct per seed on the dev examples.
use crate::error::{Error, Result};
use crate::eval::report::Row;
use crate::eval::stats::{self, Bootstrap, Summary};
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The file `finetune bench-infer --output` writes.
pub const BENCH_FILE: &str = "bench_infer.json";

#[derive(Debug, Serialize)]
pub struct ShipRow {
    pub model: PathBuf,
    /// What the model is: its report row's recipe and seed, or "int8 of" the model it quantized.
    pub label: String,
    pub layers: Option<i64>,
    pub int8: bool,
    pub file_mb: f64,
    pub parameters: i64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub throughput: f64,
    /// This model's dev task score (%).
    pub dev: f64,
    /// The task score over the seeds of the row this model's run belongs to.
    pub over_seeds: Option<Summary>,
}

#[derive(Debug, Serialize)]
pub struct ShipTable {
    pub task: String,
    pub source: PathBuf,
    pub rows: Vec<ShipRow>,
}

/// Distilled − direct on one seed's dev predictions.
#[derive(Debug, Serialize)]
pub struct Paired {
    pub task: String,
    pub student: String,
    pub seed: u64,
    pub direct: f64,
    pub distilled: f64,
    pub bootstrap: Bootstrap,
}

#[derive(Debug, Default, Serialize)]
pub struct Compression {
    pub tables: Vec<ShipTable>,
    pub paired: Vec<Paired>,
}

/// The `bench_infer.json` files of `dirs` (`report::directories`).
pub fn bench_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter().map(|d| d.join(BENCH_FILE)).filter(|f| f.is_file()).collect()
}

/// Whether two paths name the same directory (links and `..` resolved).
fn same_dir(a: &Path, b: &Path) -> bool {
    matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b)
}

fn row_of<'a>(rows: &'a [Row], dir: &Path) -> Option<(&'a Row, u64)> {
    rows.iter().find_map(|r| r.runs.iter().zip(&r.seeds).find(|(run, _)| same_dir(run, dir)).map(|(_, &seed)| (r, seed)))
}

/// What the model in `dir` is, and its row's task score over seeds.
fn describe(rows: &[Row], dir: &Path) -> (String, Option<Summary>) {
    match row_of(rows, dir) {
        Some((r, seed)) => {
            let recipe = match &r.distill {
                Some(d) => d.label(),
                None if rows.iter().any(|t| t.distill.as_ref().is_some_and(|d| same_dir(&d.teacher, dir))) => "teacher".into(),
                None => "fine-tuned".into(),
            };
            (format!("{recipe}, seed {seed}"), r.ours_task_score.clone())
        }
        None => (dir.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned()), None),
    }
}

fn read_json(path: &Path) -> Result<Value> {
    serde_json::from_slice(&crate::io::read(path)?).map_err(|e| Error::Json { path: path.into(), source: e })
}

fn ship_table(rows: &[Row], path: &Path) -> Result<ShipTable> {
    let bench = read_json(path)?;
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).ok_or_else(|| Error::file(path, format!("a row lacks the number `{k}`")));
    let mut out = Vec::new();
    for b in bench.get("rows").and_then(Value::as_array).ok_or_else(|| Error::file(path, "no `rows` array: not a bench-infer output"))? {
        let model = PathBuf::from(b.get("model").and_then(Value::as_str).unwrap_or_default());
        // A quantized model names the model it came from in quantize_results.json.
        let source = read_json(&model.join("quantize_results.json")).ok().and_then(|q| q.get("source").and_then(Value::as_str).map(PathBuf::from));
        let (label, over_seeds) = match &source {
            Some(src) => (format!("int8 of {}", describe(rows, src).0), None),
            None => describe(rows, &model),
        };
        let layers = read_json(&model.join("config.json")).ok().and_then(|c| c.get("num_hidden_layers").and_then(Value::as_i64));
        out.push(ShipRow {
            label,
            layers,
            int8: b.get("int8").and_then(Value::as_bool).unwrap_or(false),
            file_mb: field(b, "file_bytes")? / 1e6,
            parameters: field(b, "parameters")? as i64,
            latency_p50_ms: field(b, "latency_p50_ms")?,
            latency_p99_ms: field(b, "latency_p99_ms")?,
            throughput: field(b, "throughput")?,
            dev: field(b, "metric")? * 100.0,
            over_seeds,
            model,
        });
    }
    Ok(ShipTable { task: bench.get("task").and_then(Value::as_str).unwrap_or("?").to_uppercase(), source: path.into(), rows: out })
}

/// Distilled − direct per common seed, for each distilled row with a direct twin.
fn paired(rows: &[Row]) -> Result<Vec<Paired>> {
    let mut out = Vec::new();
    for r in rows {
        let Some(d) = r.distill.as_ref().filter(|d| !d.is_direct()) else { continue };
        let twin = rows.iter().find(|t| t.task == r.task && t.model == r.model && t.distill.as_ref().is_some_and(|td| td.is_direct() && td.layers == d.layers));
        let Some(twin) = twin else { continue };
        for (run, seed) in r.runs.iter().zip(&r.seeds) {
            let Some(direct) = twin.seeds.iter().position(|s| s == seed).map(|i| &twin.runs[i]) else { continue };
            let c = crate::eval::compare::compare(direct, run, 1000, 0)?;
            out.push(Paired { task: r.task.to_uppercase(), student: d.label(), seed: *seed, direct: c.score_a, distilled: c.score_b, bootstrap: c.bootstrap });
        }
    }
    Ok(out)
}

pub fn build(rows: &[Row], bench_files: &[PathBuf]) -> Result<Compression> {
    Ok(Compression { tables: bench_files.iter().map(|p| ship_table(rows, p)).collect::<Result<_>>()?, paired: paired(rows)? })
}

fn seed_row(p: &Paired) -> Vec<String> {
    let b = &p.bootstrap;
    vec![p.task.clone(), p.student.clone(), p.seed.to_string(), format!("{:.2}", p.direct), format!("{:.2}", p.distilled), format!("{:+.2} [{:+.2}, {:+.2}]", b.observed, b.ci_low, b.ci_high), format!("{:.3}", b.p_b_not_better)]
}

const SHIP_HEADER: [&str; 11] = ["model", "layers", "int8", "weights MB", "parameters", "batch-1 p50 ms", "p99 ms", "batch ex/s", "dev task score (this model)", "task score over seeds", "p50 speed-up"];

/// (title, header, rows of cells) of every table.
fn tables(c: &Compression) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    for t in &c.tables {
        let base = t.rows.first().map_or(f64::NAN, |r| r.latency_p50_ms);
        let cells = t
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.label.clone(),
                    r.layers.map_or("–".into(), |l| l.to_string()),
                    if r.int8 { "yes" } else { "no" }.into(),
                    format!("{:.1}", r.file_mb),
                    format!("{:.2} M", r.parameters as f64 / 1e6),
                    format!("{:.2}", r.latency_p50_ms),
                    format!("{:.2}", r.latency_p99_ms),
                    format!("{:.1}", r.throughput),
                    format!("{:.2}", r.dev),
                    r.over_seeds.as_ref().map_or("–".into(), |s| format!("{:.2} ± {:.2} (n={})", s.mean, s.std, s.n)),
                    format!("{:.2}×", base / r.latency_p50_ms),
                ]
            })
            .collect();
        out.push((format!("{}: shipping cost and score ({})", t.task, t.source.display()), SHIP_HEADER.iter().map(|h| h.to_string()).collect(), cells));
    }
    if !c.paired.is_empty() {
        let header = ["task", "student", "seed", "direct", "distilled", "Δ [95% CI]", "P(distilled not better)"].map(String::from).to_vec();
        // Each task and student's seeds, then their mean difference.
        let mut cells = Vec::new();
        let mut keys: Vec<(&str, &str)> = c.paired.iter().map(|p| (p.task.as_str(), p.student.as_str())).collect();
        keys.dedup();
        for (task, student) in keys {
            let group: Vec<&Paired> = c.paired.iter().filter(|p| p.task == task && p.student == student).collect();
            cells.extend(group.iter().map(|p| seed_row(p)));
            if let Some(s) = stats::summarize(&group.iter().map(|p| p.bootstrap.observed).collect::<Vec<_>>()) {
                cells.push(vec![task.into(), student.into(), "mean".into(), String::new(), String::new(), format!("{:+.2} ± {:.2} (n={})", s.mean, s.std, s.n), String::new()]);
            }
        }
        out.push(("Distilled vs fine-tuned directly: paired bootstrap of the dev task score per seed (1000 resamples, seed 0)".into(), header, cells));
    }
    out
}

pub fn markdown(c: &Compression) -> String {
    let mut s = String::new();
    for (title, header, rows) in tables(c) {
        s += &format!("\n{title}\n\n| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
        for r in rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
    }
    s
}

pub fn html(c: &Compression) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut s = String::new();
    for (title, header, rows) in tables(c) {
        s += &format!("<h3>{}</h3><table><tr>{}</tr>\n", esc(&title), header.iter().map(|h| format!("<th>{}</th>", esc(h))).collect::<String>());
        for r in rows {
            s += &format!("<tr>{}</tr>\n", r.iter().map(|c| format!("<td>{}</td>", esc(c))).collect::<String>());
        }
        s += "</table>\n";
    }
    s
}
