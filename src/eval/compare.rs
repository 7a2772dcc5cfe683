//! `finetune compare RUN_A RUN_B`: is B really better than A, or is it seed noise? A paired
//! bootstrap over the dev examples both runs scored (their saved `eval_logits.json`), on the task
//! score the report uses, with a seeded resampler so the answer is reproducible.
use crate::data::batch::Labels;
use crate::data::glue::{self, Task};
use crate::error::{Error, Result};
use crate::eval::glue::{score, Predictions};
use crate::eval::report::{task_score, Run, RunTask};
use crate::eval::stats::{paired_bootstrap, Bootstrap};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub task: String,
    pub examples: usize,
    pub score_a: f64,
    pub score_b: f64,
    /// Bootstrap of score(B) − score(A), in percentage points.
    pub bootstrap: Bootstrap,
}

fn predictions(task: Task, path: &Path) -> Result<Predictions> {
    let rows: Vec<Vec<f64>> = serde_json::from_slice(&crate::io::read(path)?).map_err(|e| Error::Json { path: path.into(), source: e })?;
    Ok(if task.is_regression() {
        Predictions::Scores(rows.iter().map(|r| r.first().copied().unwrap_or(f64::NAN)).collect())
    } else {
        Predictions::Classes(
            rows.iter().map(|r| r.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i as i64)).collect(),
        )
    })
}

fn subset_pred(p: &Predictions, idx: &[usize]) -> Predictions {
    match p {
        Predictions::Classes(v) => Predictions::Classes(idx.iter().map(|&i| v[i]).collect()),
        Predictions::Scores(v) => Predictions::Scores(idx.iter().map(|&i| v[i]).collect()),
    }
}

/// Task score (percent) of predictions on the examples at `idx`.
fn score_at(task: Task, pred: &Predictions, gold: &Labels, idx: &[usize]) -> f64 {
    let s = score(task, &subset_pred(pred, idx), &gold.select(idx));
    task_score(task, |m| s.iter().find(|(k, _)| k == m).map(|(_, v)| v * 100.0)).unwrap_or(f64::NAN)
}

/// Compares two runs of the same task on the first dev split (MNLI: matched).
pub fn compare(a: &Path, b: &Path, resamples: usize, seed: u64) -> Result<Comparison> {
    let (ra, rb) = (Run::load(a)?, Run::load(b)?);
    if ra.task != rb.task {
        return Err(Error::Invalid(format!("{} is {} but {} is {}", a.display(), ra.task.name(), b.display(), rb.task.name())));
    }
    let RunTask::Glue(task) = ra.task else {
        let command = if matches!(ra.task, RunTask::Ner { .. }) { "finetune ner" } else { "finetune classify" };
        return Err(Error::Invalid(format!("{}: `compare` works on GLUE runs; {} is a `{command}` run", a.display(), ra.task.name())));
    };
    let data_dir = ra.data_dir.clone().ok_or_else(|| Error::file(a.join("run_config.json"), "no `args.data_dir`"))?;
    let dev = task.task_dir(&data_dir).join(format!("{}.tsv", task.eval_splits()[0].file));
    let mut examples = glue::read_labelled(task, &dev)?;
    examples.truncate(ra.max_eval_samples.unwrap_or(usize::MAX));
    let gold = Labels::from_targets(examples.iter().map(|e| e.target)).ok_or_else(|| Error::file(&dev, "labels mix classes and scores"))?;
    let (pa, pb) = (predictions(task, &a.join("eval_logits.json"))?, predictions(task, &b.join("eval_logits.json"))?);
    let len = |p: &Predictions| match p {
        Predictions::Classes(v) => v.len(),
        Predictions::Scores(v) => v.len(),
    };
    for (run, p) in [(a, &pa), (b, &pb)] {
        if len(p) != gold.len() {
            return Err(Error::file(
                run.join("eval_logits.json"),
                format!("{} predictions, but {} has {} examples: the runs were not scored on the same dev set", len(p), dev.display(), gold.len()),
            ));
        }
    }
    let all: Vec<usize> = (0..gold.len()).collect();
    let bootstrap = paired_bootstrap(gold.len(), resamples, seed, |idx| score_at(task, &pb, &gold, idx) - score_at(task, &pa, &gold, idx));
    Ok(Comparison {
        task: task.name().into(),
        examples: gold.len(),
        score_a: score_at(task, &pa, &gold, &all),
        score_b: score_at(task, &pb, &gold, &all),
        bootstrap,
    })
}
