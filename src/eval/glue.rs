//! GLUE scoring: the metric set each task reports (as the `glue` metric of `evaluate` does) and
//! `combined_score`, the mean of a task's metrics where it has more than one.
use crate::data::batch::Labels;
use crate::data::glue::{self, Task};
use crate::error::{Error, Result};
use crate::eval::metrics;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Model outputs over a split: predicted classes or predicted scores.
#[derive(Debug, Clone, PartialEq)]
pub enum Predictions {
    Classes(Vec<i64>),
    Scores(Vec<f64>),
}

/// A task's metrics in report order: (run_glue.py's metric name without `eval_`, value).
pub type Scores = Vec<(String, f64)>;

/// Scores predictions against gold labels.
pub fn score(task: Task, pred: &Predictions, gold: &Labels) -> Scores {
    let mut out: Scores = match (pred, gold) {
        (Predictions::Classes(p), Labels::Classes(g)) => match task {
            Task::Cola => vec![("matthews_correlation".into(), metrics::matthews_corrcoef(p, g))],
            Task::Mrpc | Task::Qqp => vec![("accuracy".into(), metrics::accuracy(p, g)), ("f1".into(), metrics::f1(p, g))],
            _ => vec![("accuracy".into(), metrics::accuracy(p, g))],
        },
        (Predictions::Scores(p), Labels::Scores(g)) => {
            let g: Vec<f64> = g.iter().map(|&x| x as f64).collect();
            vec![("pearson".into(), metrics::pearson(p, &g)), ("spearmanr".into(), metrics::spearman(p, &g))]
        }
        _ => panic!("predictions and labels disagree on classification vs regression for {}", task.name()),
    };
    if out.len() > 1 {
        let mean = out.iter().map(|(_, v)| v).sum::<f64>() / out.len() as f64;
        out.push(("combined_score".into(), mean));
    }
    out
}

/// The number best-model selection maximises: `combined_score` if present, else the single metric.
pub fn objective(scores: &[(String, f64)]) -> f64 {
    scores.iter().find(|(k, _)| k == "combined_score").or(scores.first()).map_or(f64::NAN, |(_, v)| *v)
}

/// Adds `eval_<name><suffix>` entries to a JSON map (NaN becomes `null`).
pub fn insert_prefixed(map: &mut Map<String, Value>, scores: &[(String, f64)], suffix: &str) {
    for (k, v) in scores {
        map.insert(format!("eval_{k}{suffix}"), serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number));
    }
}

/// Scores of the majority-class predictor on the task's dev split(s), with run_glue key names.
pub fn majority_baseline(task: Task, data_dir: &Path, max_train: Option<usize>, max_eval: Option<usize>) -> Result<Map<String, Value>> {
    let dir = task.task_dir(data_dir);
    let labels = |file: &str, limit: Option<usize>| -> Result<Labels> {
        let path = dir.join(format!("{file}.tsv"));
        let mut ex = glue::read_labelled(task, &path)?;
        ex.truncate(limit.unwrap_or(usize::MAX));
        Labels::from_targets(ex.iter().map(|e| e.target)).ok_or_else(|| Error::file(&path, "labels mix classes and scores"))
    };
    let train = labels("train", max_train)?;
    let mut results = Map::new();
    for split in task.eval_splits() {
        let gold = labels(split.file, max_eval)?;
        insert_prefixed(&mut results, &score(task, &majority(&train, gold.len()), &gold), split.key_suffix);
        results.insert(format!("eval_samples{}", split.key_suffix), json!(gold.len()));
    }
    Ok(results)
}

/// Constant predictions: the most frequent training class (lowest id on ties), or the mean score.
fn majority(train: &Labels, n: usize) -> Predictions {
    match train {
        Labels::Classes(c) => {
            let k = c.iter().copied().max().unwrap_or(0) as usize + 1;
            let mut counts = vec![0usize; k];
            c.iter().for_each(|&x| counts[x as usize] += 1);
            let best = (0..k).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
            Predictions::Classes(vec![best as i64; n])
        }
        Labels::Scores(s) => {
            let mean = s.iter().map(|&x| x as f64).sum::<f64>() / s.len().max(1) as f64;
            Predictions::Scores(vec![mean; n])
        }
        Labels::MultiHot { .. } => unreachable!("GLUE labels are classes or scores"),
    }
}
