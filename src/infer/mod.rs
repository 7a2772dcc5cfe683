//! Inference with a fine-tuned sequence classifier (or regressor): load the model directory once,
//! tokenise inputs, run them in length-sorted batches (little padding), and return labels with
//! probabilities, or scores. The same batching function computes the logits evaluation reports,
//! so `finetune predict` reproduces evaluation exactly.
pub mod bench;
pub mod input;
pub mod ner;
pub mod qa;

use crate::data::batch::collate;
use crate::data::classify::ProblemType;
use crate::data::tokenize::{load_tokenizer, Features, TextEncoder};
use crate::error::{Error, Result};
use crate::eval::classification::{argmax, sigmoid};
use crate::model::config::BertConfig;
use crate::model::heads::SequenceClassifier;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// One text or text pair.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub text: String,
    #[serde(default)]
    pub text_pair: Option<String>,
}

impl Input {
    /// The field that is empty (or only spaces), if one is: training refuses empty texts, so a
    /// model has never seen one and has no prediction to give.
    pub fn empty_field(&self) -> Option<&'static str> {
        if self.text.trim().is_empty() {
            Some("text")
        } else if self.text_pair.as_ref().is_some_and(|t| t.trim().is_empty()) {
            Some("text_pair")
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// Predicted label name (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_id: Option<i64>,
    /// Probability of the predicted label, or the predicted value for regression.
    pub score: f64,
    /// Probability of every label, in id order (classification; independent sigmoids for
    /// multi-label).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
    /// Multi-label: every label whose probability exceeds the model's threshold, most probable first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<LabelScore>>,
    pub logits: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelScore {
    pub label: String,
    pub probability: f64,
}

/// Whether a model directory's config.json names an architecture ending in `suffix`
/// (`ForQuestionAnswering`, `ForTokenClassification`).
pub fn has_architecture(dir: &Path, suffix: &str) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|c| c["architectures"].as_array().is_some_and(|a| a.iter().any(|x| x.as_str().is_some_and(|s| s.ends_with(suffix)))))
}

/// Padded tokens a batch may spend beyond its real tokens: more than this and the batch is split.
const MAX_PADDING_FRACTION: f64 = 0.25;

/// Groups example indices into batches of up to `batch_size` examples of similar length: sorted
/// longest first (ties by position), a batch is closed early when padding to its longest example
/// would waste more than `MAX_PADDING_FRACTION` of its tokens. Large sets of real text keep full
/// batches (neighbours in sorted order have nearly equal lengths); a small mixed set, as a server
/// sees, avoids padding short inputs to a long one.
pub fn length_batches(lengths: &[usize], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut real = 0usize;
    for i in order {
        let fits = batches.last().is_some_and(|b| {
            let longest = lengths[b[0]];
            b.len() < batch_size.max(1) && (longest * (b.len() + 1)) as f64 <= (1.0 + MAX_PADDING_FRACTION) * (real + lengths[i]) as f64
        });
        if fits {
            batches.last_mut().expect("checked").push(i);
            real += lengths[i];
        } else {
            batches.push(vec![i]);
            real = lengths[i];
        }
    }
    batches
}

/// Logits of every feature, in input order, computed over `length_batches` (padded as `collate`
/// pads: to the batch maximum rounded up to the multiple), with dropout off.
pub fn batched_logits(
    net: &SequenceClassifier,
    features: &[Features],
    (pad_id, pad_to_multiple_of): (i64, usize),
    batch_size: usize,
    device: Device,
    progress: Option<&indicatif::ProgressBar>,
) -> Tensor {
    let lengths: Vec<usize> = features.iter().map(|f| f.input_ids.len()).collect();
    let mut out: Vec<Tensor> = (0..features.len()).map(|_| Tensor::new()).collect();
    tch::no_grad(|| {
        for chunk in length_batches(&lengths, batch_size) {
            let b = collate(features, &chunk, pad_id, pad_to_multiple_of, device);
            let logits = net.forward(&b.input_ids, &b.token_type_ids, &b.attention_mask, false).to_device(Device::Cpu).to_kind(Kind::Float);
            for (row, &i) in chunk.iter().enumerate() {
                out[i] = logits.get(row as i64);
            }
            if let Some(p) = progress {
                p.inc(chunk.len() as u64);
            }
        }
    });
    if out.is_empty() {
        return Tensor::zeros([0, net.num_labels], (Kind::Float, Device::Cpu));
    }
    Tensor::stack(&out, 0)
}

pub struct Classifier {
    vs: VarStore,
    net: SequenceClassifier,
    pub encoder: TextEncoder,
    /// Label names by id; `None` for regression.
    pub labels: Option<Vec<String>>,
    pub problem: ProblemType,
    /// Multi-label decision threshold (run_config.json's `threshold`, else 0.5).
    pub threshold: f64,
    pub max_seq_length: usize,
    pub model_dir: PathBuf,
    pub task: Option<String>,
    pub device: Device,
    /// Int8 Linear layers (`finetune quantize`).
    pub quantized: bool,
}

/// An argument the model was fine-tuned with, from the run's `run_config.json` when the model
/// directory is a run directory.
pub fn trained_arg(dir: &Path, name: &str) -> Option<Value> {
    let v: Value = serde_json::from_slice(&std::fs::read(dir.join("run_config.json")).ok()?).ok()?;
    v.pointer(&format!("/args/{name}")).cloned()
}

impl Classifier {
    /// Loads a fine-tuned model directory (config.json with `id2label`, weights, tokenizer).
    pub fn load(dir: &Path, max_seq_length: Option<usize>, device: Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg = BertConfig::from_file(&cfg_path)?;
        if has_architecture(dir, "ForQuestionAnswering") {
            return Err(Error::file(&cfg_path, "a question-answering model (*ForQuestionAnswering), not a sequence classifier: `finetune predict` answers its questions, `finetune squad` evaluates it"));
        }
        let labels = cfg.labels_by_id(&cfg_path)?.ok_or_else(|| {
            Error::file(&cfg_path, "no `id2label`: not a fine-tuned classifier (fine-tune it with `finetune glue` first)")
        })?;
        let problem = match cfg.problem_type.as_deref() {
            Some(p) => p.parse().map_err(|_| Error::file(&cfg_path, format!("problem_type `{p}`; expected single_label_classification, multi_label_classification or regression")))?,
            None if labels.len() == 1 => ProblemType::Regression,
            None => ProblemType::SingleLabel,
        };
        let regression = problem == ProblemType::Regression;
        let num_labels = labels.len() as i64;
        let (vs, net, report) = crate::model::checkpoint::load_sequence_classifier(dir, &cfg, num_labels, device)?;
        if !report.newly_initialised.is_empty() {
            return Err(Error::file(dir, format!("weights lack {:?}: not a fine-tuned classifier", report.newly_initialised)));
        }
        let max_seq_length = max_seq_length.or_else(|| trained_arg(dir, "max_seq_length")?.as_u64().map(|n| n as usize)).unwrap_or(128);
        Ok(Classifier {
            vs,
            net,
            encoder: {
                cfg.check_seq_length(max_seq_length, &cfg_path)?;
                TextEncoder::new(load_tokenizer(dir)?, max_seq_length)?
            },
            labels: (!regression).then_some(labels),
            problem,
            threshold: trained_arg(dir, "threshold").and_then(|v| v.as_f64()).unwrap_or(0.5),
            max_seq_length,
            model_dir: dir.into(),
            task: cfg.extra.get("finetuning_task").and_then(Value::as_str).map(str::to_string),
            device,
            quantized: cfg.is_quantized(),
        })
    }

    /// Parameters of the loaded model (an int8 layer's scales not counted).
    pub fn parameters(&self) -> i64 {
        let scale = format!(".{}", crate::model::linear::SCALE_SUFFIX);
        self.vs.variables().iter().filter(|(n, _)| !n.ends_with(&scale)).map(|(_, t)| t.numel() as i64).sum()
    }

    pub fn encode(&self, inputs: &[Input]) -> Result<Vec<Features>> {
        self.encoder.encode(inputs.iter().map(|i| (i.text.as_str(), i.text_pair.as_deref())))
    }

    /// Predictions for tokenised inputs, in input order.
    pub fn predict_features(&self, features: &[Features], batch_size: usize) -> Result<Vec<Prediction>> {
        self.predict_with_progress(features, batch_size, None)
    }

    pub fn predict_with_progress(&self, features: &[Features], batch_size: usize, progress: Option<&indicatif::ProgressBar>) -> Result<Vec<Prediction>> {
        let logits = batched_logits(&self.net, features, (self.encoder.pad_id, 1), batch_size, self.device, progress);
        let rows: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(logits)?;
        Ok(rows.into_iter().map(|l| self.prediction(l)).collect())
    }

    pub fn predict(&self, inputs: &[Input], batch_size: usize) -> Result<Vec<Prediction>> {
        self.predict_features(&self.encode(inputs)?, batch_size)
    }

    fn prediction(&self, logits: Vec<f32>) -> Prediction {
        let none = Prediction { label: None, label_id: None, score: logits[0] as f64, probabilities: None, labels: None, logits: Vec::new() };
        match (&self.labels, self.problem) {
            (Some(names), ProblemType::MultiLabel) => {
                let p: Vec<f64> = logits.iter().map(|&l| sigmoid(l)).collect();
                let mut on: Vec<usize> = (0..p.len()).filter(|&i| p[i] > self.threshold).collect();
                on.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                let labels = on.iter().map(|&i| LabelScore { label: names[i].clone(), probability: p[i] }).collect();
                Prediction { score: p.iter().copied().fold(0.0, f64::max), probabilities: Some(p), labels: Some(labels), logits, ..none }
            }
            (Some(names), _) => {
                // Softmax in f64 with the max subtracted, so large logits cannot overflow.
                let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
                let e: Vec<f64> = logits.iter().map(|&l| (l as f64 - m).exp()).collect();
                let z: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / z).collect();
                let best = argmax(&logits);
                Prediction { label: Some(names[best].clone()), label_id: Some(best as i64), score: p[best], probabilities: Some(p), logits, ..none }
            }
            (None, _) => Prediction { logits, ..none },
        }
    }

    /// What `/metadata` and prediction files report about the model: no local paths (a client
    /// of the server has no business knowing the server's file system), only the model
    /// directory's name.
    pub fn metadata(&self) -> Value {
        json!({
            "model": self.model_dir.file_name().map(|n| n.to_string_lossy()),
            "task": self.task,
            "problem_type": self.problem.hf_name(),
            "labels": self.labels,
            "max_seq_length": self.max_seq_length,
            "device": format!("{:?}", self.device),
            "finetune_version": env!("CARGO_PKG_VERSION"),
        })
    }
}

/// One JSON line per prediction, `{"id", ...prediction}`, in input order.
pub fn predictions_jsonl(rows: &[input::Row], preds: &[Prediction]) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        id: &'a str,
        #[serde(flatten)]
        prediction: &'a Prediction,
    }
    let mut out = String::new();
    for (row, pred) in rows.iter().zip(preds) {
        out += &serde_json::to_string(&Line { id: &row.id, prediction: pred }).expect("prediction serialises");
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::length_batches;

    #[test]
    fn batches_group_similar_lengths_and_cover_every_index_once() {
        let lengths = [10, 100, 12, 98, 11, 99, 50];
        // 100, 99, 98 and 50 pad to 400 tokens for 347 real ones (≤ 25% more); 12 would not fit.
        let b = length_batches(&lengths, 32);
        assert_eq!(b, vec![vec![1, 5, 3, 6], vec![2, 4, 0]]);
        assert_eq!(length_batches(&[100, 10], 32), vec![vec![0], vec![1]]);
        let b = length_batches(&lengths, 2);
        assert!(b.iter().all(|x| x.len() <= 2));
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        // Equal lengths fill whole batches.
        assert_eq!(length_batches(&[5; 10], 4).iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
    }
}
