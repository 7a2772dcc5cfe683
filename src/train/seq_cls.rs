//! What the two sequence-classification jobs share (`glue` on the GLUE tasks, `classify` on a
//! user's files): a tokenised split, the model with its encoder and labels, dev-set logits in
//! length-sorted batches (as `finetune predict` computes them), the model directory written for
//! transformers, and the training loop's workload. The jobs differ only in how they read their
//! files and score logits, which they hand in as a `Scorer`.
use crate::data::batch::{collate, Labels};
use crate::data::classify::ProblemType;
use crate::data::tokenize::{Features, TextEncoder};
use crate::error::{Error, Result};
use crate::eval::glue::{insert_prefixed, Scores};
use crate::model::checkpoint;
use crate::model::config::BertConfig;
use crate::model::heads::SequenceClassifier;
use crate::train::trainer::{Evaluation, TrainSummary, Workload};
use serde_json::{json, Map};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Tensor};

/// A tokenised split and its gold labels (none for a test file without labels).
pub struct Encoded {
    pub features: Vec<Features>,
    pub labels: Option<Labels>,
}

pub struct Model {
    pub vs: VarStore,
    pub net: SequenceClassifier,
    pub cfg: BertConfig,
    /// The checkpoint fine-tuning started from (its tokenizer files are copied on save).
    pub source_dir: PathBuf,
    pub encoder: TextEncoder,
    /// Label names by id (`None` for regression) and the task name, for config.json.
    pub labels: Option<Vec<String>>,
    pub task: String,
    /// Batch lengths round up to this multiple in evaluation too (see `collate`).
    pub pad_to_multiple_of: usize,
}

impl Model {
    /// Logits of every example, in order, with dropout off (batched as `finetune predict` does);
    /// under data parallelism each rank computes a share (every rank calls this together).
    pub fn logits(&self, features: &[Features], batch_size: usize) -> Result<Tensor> {
        crate::train::ddp::shard_rows(features.len(), |share| {
            crate::infer::batched_logits(&self.net, &features[share], (self.encoder.pad_id, self.pad_to_multiple_of), batch_size, self.vs.device(), None)
        })
    }

    /// Mean loss of `logits` against the gold labels of every example.
    pub fn loss(&self, logits: &Tensor, labels: &Labels) -> f64 {
        let idx: Vec<usize> = (0..labels.len()).collect();
        self.net.loss(logits, &labels.gather(&idx, Device::Cpu)).double_value(&[])
    }

    /// Writes an HF-style model directory: config.json with labels and problem type,
    /// model.safetensors, tokenizer.
    pub fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save_safetensors(&self.vs, &dir.join("model.safetensors"))?;
        checkpoint::save_config(&self.cfg, self.labels.as_deref(), self.net.problem, &self.task, &dir.join("config.json"))?;
        checkpoint::save_tokenizer(&self.encoder.tokenizer_for_saving()?, &self.source_dir, dir)
    }

    pub fn problem(&self) -> ProblemType {
        self.net.problem
    }
}

/// Scores a labelled split's logits: the metrics (names without `eval_`) and the number
/// best-model selection maximises.
pub type Scorer<'a> = dyn Fn(&Tensor, &Labels) -> Result<(Scores, f64)> + 'a;

/// The training loop's view of a sequence-classification job.
pub struct Work<'a> {
    pub model: &'a Model,
    pub train: &'a Encoded,
    /// Evaluation splits with the suffix of their metric names (`""`, or `_mm` for MNLI's second).
    pub evals: Vec<(&'a str, &'a Encoded)>,
    pub scorer: &'a Scorer<'a>,
    pub eval_batch_size: usize,
    pub best_dir: PathBuf,
}

impl Workload for Work<'_> {
    fn lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.features.iter().map(|f| f.input_ids.len()).collect())
    }

    fn batch(&mut self, indices: &[usize], _step: usize) -> Result<Vec<Tensor>> {
        let m = self.model;
        let b = collate(&self.train.features, indices, m.encoder.pad_id, m.pad_to_multiple_of, m.vs.device());
        let labels = self.train.labels.as_ref().ok_or_else(|| Error::Invalid("the training split has no labels".into()))?;
        Ok(vec![b.input_ids, b.token_type_ids, b.attention_mask, labels.gather(indices, m.vs.device())])
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        Ok(self.model.net.batch_loss(b))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let mut metrics = Map::new();
        let mut first = None;
        for (suffix, data) in &self.evals {
            let (_, objective) = score_split(self.model, data, self.scorer, self.eval_batch_size, suffix, &mut metrics)?;
            first.get_or_insert(objective);
        }
        Ok(Evaluation { metrics, objective: first.unwrap_or(f64::NAN) })
    }

    fn on_best(&mut self, _step: usize, _eval: &Evaluation) -> Result<()> {
        self.model.save(&self.best_dir)
    }
}

/// The final evaluation of one split: its metrics, loss and example count into `results` (names
/// ending in `suffix`), and the logits into `eval_logits<suffix>.json` for side-by-side checks
/// against transformers (tools/check_hf_load.py). Returns those logits.
pub fn final_evaluation(model: &Model, data: &Encoded, scorer: &Scorer, batch_size: usize, out: &Path, suffix: &str, results: &mut Map<String, serde_json::Value>) -> Result<Vec<Vec<f32>>> {
    let (logits, _) = score_split(model, data, scorer, batch_size, suffix, results)?;
    let rows: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(&logits)?;
    crate::io::write_json(&out.join(format!("eval_logits{suffix}.json")), &rows)?;
    results.insert(format!("eval_samples{suffix}"), json!(data.features.len()));
    Ok(rows)
}

/// Scores one labelled split: its metrics and loss into `into` (names ending in `suffix`); returns
/// the logits and the objective.
fn score_split(model: &Model, data: &Encoded, scorer: &Scorer, batch_size: usize, suffix: &str, into: &mut Map<String, serde_json::Value>) -> Result<(Tensor, f64)> {
    let labels = data.labels.as_ref().ok_or_else(|| Error::Invalid("evaluation split has no labels".into()))?;
    let logits = model.logits(&data.features, batch_size)?;
    let (scores, objective) = scorer(&logits, labels)?;
    insert_prefixed(into, &scores, suffix);
    into.insert(format!("eval_loss{suffix}"), json!(model.loss(&logits, labels)));
    Ok((logits, objective))
}

/// `train_results.json` (the loop's summary plus estimated training FLOPs and the mean sequence
/// length) and `train_curves.png`.
pub fn write_train_results(model: &Model, summary: &TrainSummary, train: &Encoded, device: Device, out: &Path, title: &str) -> Result<()> {
    let n = train.features.len();
    let mean_len = train.features.iter().map(|f| f.input_ids.len() as f64).sum::<f64>() / n.max(1) as f64;
    let flops = crate::train::cost::bert_train_flops(&model.cfg, model.net.num_labels, summary.examples_seen as f64 * mean_len, mean_len);
    let mut train_results = summary.results(n, device);
    train_results.insert("train_flops_estimate".into(), json!(flops));
    train_results.insert("train_mean_seq_length".into(), json!(mean_len));
    crate::io::write_json(&out.join("train_results.json"), &train_results)?;
    crate::eval::plots::learning_curves(&out.join("train_log.jsonl"), &out.join("train_curves.png"), title)
}
