//! GLUE scoring: the metric set each task reports (as the `glue` metric of `evaluate` does) and
//! `combined_score`, the mean of a task's metrics where it has more than one.
use crate::data::batch::Labels;
use crate::data::glue::Task;
use crate::eval::metrics;
use serde_json::{Map, Value};

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
