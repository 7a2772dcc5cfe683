//! `finetune bench-infer`: the same GLUE dev inputs through several fine-tuned classifiers in one
//! run (a float model and its int8 or distilled versions), with what shipping cares about: batch-1
//! latency (p50/p99), batch throughput, weights file size, parameter count, and the dev metric
//! computed by the task's official scorer.
use crate::data::batch::Labels;
use crate::data::glue::{read_labelled, Task};
use crate::error::{Error, Result};
use crate::data::tokenize::Features;
use crate::eval::glue::{objective, score, Predictions};
use crate::eval::stats::percentile;
use crate::infer::Classifier;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct InferBenchArgs {
    pub task: Task,
    pub data_dir: PathBuf,
    /// Dev examples scored and timed in batches (all when `None`).
    pub max_eval_samples: Option<usize>,
    /// Examples timed one at a time.
    pub latency_samples: usize,
    pub batch_size: usize,
    pub max_seq_length: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InferBenchRow {
    pub model: PathBuf,
    pub int8: bool,
    pub file_bytes: u64,
    /// Parameters (an int8 layer's scales not counted).
    pub parameters: i64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Examples per second over the dev set in batches of `batch_size`.
    pub throughput: f64,
    /// The task's main metric (`combined_score` where it has several), and every metric.
    pub metric: f64,
    pub metrics: Vec<(String, f64)>,
}

/// Benchmarks each model in turn on the same inputs.
pub fn run(models: &[PathBuf], args: &InferBenchArgs) -> Result<Vec<InferBenchRow>> {
    let dev_path = args.task.task_dir(&args.data_dir).join(format!("{}.tsv", args.task.eval_splits()[0].file));
    let mut examples = read_labelled(args.task, &dev_path)?;
    if let Some(n) = args.max_eval_samples {
        examples.truncate(n);
    }
    let gold = Labels::from_targets(examples.iter().map(|e| e.target)).ok_or_else(|| Error::file(&dev_path, "the dev file has no labels"))?;
    let inputs: Vec<crate::infer::Input> = examples.iter().map(|e| crate::infer::Input { text: e.text_a.clone(), text_pair: e.text_b.clone() }).collect();
    let loaded: Vec<(Classifier, Vec<Features>)> = models.iter().map(|m| load(m, args, &inputs)).collect::<Result<_>>()?;
    // Batch-1 latency with the models taking turns, input by input, so that a machine whose speed
    // drifts during the run slows each of them alike.
    let mut latencies: Vec<Vec<f64>> = vec![Vec::with_capacity(args.latency_samples); loaded.len()];
    for k in 0..args.latency_samples {
        for ((model, features), lat) in loaded.iter().zip(&mut latencies) {
            let t = Instant::now();
            model.predict_features(std::slice::from_ref(&features[k % features.len()]), 1)?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    loaded.iter().zip(latencies).map(|((model, features), mut lat)| {
        lat.sort_by(f64::total_cmp);
        let t = Instant::now();
        let preds = model.predict_features(features, args.batch_size)?;
        let throughput = features.len() as f64 / t.elapsed().as_secs_f64().max(1e-9);
        let predicted = if args.task.is_regression() {
            Predictions::Scores(preds.iter().map(|p| p.score).collect())
        } else {
            Predictions::Classes(preds.iter().map(|p| p.label_id.unwrap_or(0)).collect())
        };
        let metrics = score(args.task, &predicted, &gold);
        let weights = crate::model::checkpoint::weights_file(&model.model_dir)?;
        Ok(InferBenchRow {
            model: model.model_dir.clone(),
            int8: model.quantized,
            file_bytes: std::fs::metadata(&weights).map_err(|e| Error::file(&weights, e.to_string()))?.len(),
            parameters: model.parameters(),
            latency_p50_ms: percentile(&lat, 50.0),
            latency_p99_ms: percentile(&lat, 99.0),
            throughput,
            metric: objective(&metrics),
            metrics,
        })
    }).collect()
}

/// A model checked against the task's labels, its inputs tokenised, warmed up (the first calls
/// allocate and, for int8 layers, pack the weights).
fn load(dir: &Path, args: &InferBenchArgs, inputs: &[crate::infer::Input]) -> Result<(Classifier, Vec<Features>)> {
    let model = Classifier::load(dir, args.max_seq_length, tch::Device::Cpu)?;
    let expected: Option<Vec<String>> = args.task.labels().map(|l| l.iter().map(|s| s.to_string()).collect());
    if model.labels != expected {
        let show = |l: &Option<Vec<String>>| l.as_ref().map_or("none (a regressor)".to_string(), |l| format!("[{}]", l.join(", ")));
        return Err(Error::file(
            dir.join("config.json"),
            format!("the model's labels are {}, but {} needs {}: bench-infer times models fine-tuned on --task", show(&model.labels), args.task.name(), show(&expected)),
        ));
    }
    let features = model.encode(inputs)?;
    if features.is_empty() {
        return Err(Error::Invalid("no dev examples to run".into()));
    }
    model.predict_features(&features[..features.len().min(args.batch_size)], args.batch_size)?;
    Ok((model, features))
}

/// The rows as a markdown table, each ratio against the first model.
pub fn table(rows: &[InferBenchRow]) -> String {
    let mut s = String::from("| model | int8 | weights MB | parameters | batch-1 p50 ms | p99 ms | batch examples/s | dev | size ÷ | p50 speed-up |\n|---|---|---|---|---|---|---|---|---|---|\n");
    let Some(base) = rows.first() else { return s };
    for r in rows {
        let name = r.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| r.model.display().to_string());
        s.push_str(&format!(
            "| {name} | {} | {:.1} | {:.2} M | {:.2} | {:.2} | {:.1} | {} | {:.2}× | {:.2}× |\n",
            if r.int8 { "yes" } else { "no" },
            r.file_bytes as f64 / 1e6,
            r.parameters as f64 / 1e6,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.throughput,
            r.metrics.iter().map(|(k, v)| format!("{k} {:.2}", 100.0 * v)).collect::<Vec<_>>().join(", "),
            base.file_bytes as f64 / r.file_bytes as f64,
            base.latency_p50_ms / r.latency_p50_ms,
        ));
    }
    s
}
