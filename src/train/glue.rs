//! The GLUE fine-tuning job behind `finetune glue`: read the task's splits, tokenise, load the
//! checkpoint with a fresh classification head, train, evaluate with the official metric, and
//! write run_glue.py-compatible outputs (eval_results.json, predictions, an HF model directory).
use crate::data::batch::{collate, Labels};
use crate::data::glue::{self, Example, Split, Task};
use crate::data::tokenize::{load_tokenizer, Features, TextEncoder};
use crate::error::{Error, Result};
use crate::eval::glue::{insert_prefixed, objective, score, Predictions, Scores};
use crate::model::checkpoint;
use crate::model::config::BertConfig;
use crate::model::heads::SequenceClassifier;
use crate::model::hub;
use crate::train::trainer::{self, Evaluation, ResumeFrom, RunContext, TrainArgs, Workload};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Predict the most frequent training label (the mean score for regression).
    Majority,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct GlueArgs {
    pub task: Task,
    pub model_name_or_path: String,
    pub data_dir: PathBuf,
    pub output_dir: PathBuf,
    pub max_seq_length: usize,
    pub per_device_eval_batch_size: usize,
    pub train: TrainArgs,
    pub baseline: Option<Baseline>,
    pub do_predict: bool,
    #[serde(serialize_with = "crate::run_info::serialize_device")]
    pub device: Device,
    pub load_best_model_at_end: bool,
    pub max_train_samples: Option<usize>,
    pub max_eval_samples: Option<usize>,
    pub resume: Option<ResumeFrom>,
}

/// A tokenised split.
struct Encoded {
    examples: Vec<Example>,
    features: Vec<Features>,
    labels: Option<Labels>,
}

fn load_split(task: Task, enc: &TextEncoder, path: &Path, labelled: bool, limit: Option<usize>) -> Result<Encoded> {
    let mut examples = if labelled { glue::read_labelled(task, path)? } else { glue::read_unlabelled(task, path)? };
    if let Some(n) = limit {
        examples.truncate(n);
    }
    let features = enc.encode(examples.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())))?;
    let labels = if labelled { Labels::from_targets(examples.iter().map(|e| e.target)) } else { None };
    Ok(Encoded { examples, features, labels })
}

struct Model {
    vs: VarStore,
    net: SequenceClassifier,
    cfg: BertConfig,
    source_dir: PathBuf,
    encoder: TextEncoder,
    task: Task,
    /// Batch lengths round up to this multiple in evaluation too (see `collate`).
    pad_to_multiple_of: usize,
}

impl Model {
    /// Logits of every example, in order, with dropout off (batched as `finetune predict` does).
    fn logits(&self, features: &[Features], batch_size: usize) -> Tensor {
        crate::infer::batched_logits(&self.net, features, (self.encoder.pad_id, self.pad_to_multiple_of), batch_size, self.vs.device(), None)
    }

    fn predictions(&self, logits: &Tensor) -> Result<Predictions> {
        Ok(if self.task.is_regression() {
            Predictions::Scores(Vec::<f64>::try_from(logits.squeeze_dim(-1).to_kind(Kind::Double))?)
        } else {
            Predictions::Classes(Vec::<i64>::try_from(logits.argmax(-1, false))?)
        })
    }

    /// Metrics (run_glue names), mean loss and logits of a labelled split.
    fn evaluate(&self, split: &Encoded, batch_size: usize) -> Result<(Scores, f64, Tensor)> {
        let labels = split.labels.as_ref().ok_or_else(|| Error::Invalid("evaluation split has no labels".into()))?;
        let logits = self.logits(&split.features, batch_size);
        let idx: Vec<usize> = (0..labels.len()).collect();
        let loss = self.net.loss(&logits, &labels.gather(&idx, Device::Cpu)).double_value(&[]);
        Ok((score(self.task, &self.predictions(&logits)?, labels), loss, logits))
    }

    /// Writes an HF-style model directory: config.json with labels, model.safetensors, tokenizer.
    fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save_safetensors(&self.vs, &dir.join("model.safetensors"))?;
        checkpoint::save_config(&self.cfg, self.task.labels(), self.task.name(), &dir.join("config.json"))?;
        checkpoint::save_tokenizer(&self.encoder.tokenizer_for_saving()?, &self.source_dir, dir)
    }
}

struct GlueWork<'a> {
    model: &'a Model,
    train: &'a Encoded,
    evals: &'a [(Split, Encoded)],
    eval_batch_size: usize,
    pad_to_multiple_of: usize,
    best_dir: PathBuf,
}

impl Workload for GlueWork<'_> {
    fn lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.features.iter().map(|f| f.input_ids.len()).collect())
    }

    fn batch(&mut self, indices: &[usize], _step: usize) -> Result<Vec<Tensor>> {
        let m = self.model;
        let b = collate(&self.train.features, indices, m.encoder.pad_id, self.pad_to_multiple_of, m.vs.device());
        let labels = self.train.labels.as_ref().expect("training split is labelled").gather(indices, m.vs.device());
        Ok(vec![b.input_ids, b.token_type_ids, b.attention_mask, labels])
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        Ok(self.model.net.batch_loss(b))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let mut metrics = Map::new();
        let mut first = None;
        for (split, data) in self.evals {
            let (scores, loss, _) = self.model.evaluate(data, self.eval_batch_size)?;
            insert_prefixed(&mut metrics, &scores, split.key_suffix);
            metrics.insert(format!("eval_loss{}", split.key_suffix), json!(loss));
            first.get_or_insert(objective(&scores));
        }
        Ok(Evaluation { metrics, objective: first.unwrap_or(f64::NAN) })
    }

    fn on_best(&mut self, _step: usize, _eval: &Evaluation) -> Result<()> {
        self.model.save(&self.best_dir)
    }
}

/// Runs the job; returns the contents written to `eval_results.json`.
pub fn run(args: &GlueArgs) -> Result<Map<String, Value>> {
    let task = args.task;
    let out = &args.output_dir;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let model_dir = hub::resolve(&args.model_name_or_path)?;
    let cfg = BertConfig::from_file(&model_dir.join("config.json"))?;
    if let Some(n) = cfg.num_labels().filter(|&n| n != task.num_labels()) {
        tracing::warn!("checkpoint was fine-tuned with {n} labels; {} needs {}", task.name(), task.num_labels());
    }
    let encoder = TextEncoder::new(load_tokenizer(&model_dir)?, args.max_seq_length)?;
    let task_dir = task.task_dir(&args.data_dir);
    let tsv = |stem: &str| task_dir.join(format!("{stem}.tsv"));
    let train = load_split(task, &encoder, &tsv("train"), true, args.max_train_samples)?;
    let evals: Vec<(Split, Encoded)> = task
        .eval_splits()
        .iter()
        .map(|s| Ok((*s, load_split(task, &encoder, &tsv(s.file), true, args.max_eval_samples)?)))
        .collect::<Result<_>>()?;

    let env = crate::run_info::environment(args.device);
    crate::io::write_json(&out.join("run_config.json"), &json!({
        "command": "glue", "args": args, "model_dir": model_dir, "model_config": cfg,
        "train_examples": train.examples.len(), "environment": env,
    }))?;

    if let Some(Baseline::Majority) = args.baseline {
        return finish(out, majority_baseline(task, &args.data_dir, args.max_train_samples, args.max_eval_samples)?);
    }
    let mut results = Map::new();

    tch::manual_seed(args.train.seed as i64);
    let (vs, net, report) = checkpoint::load_sequence_classifier(&model_dir, &cfg, task.num_labels(), args.device)?;
    tracing::info!("loaded {}; newly initialised: {:?}; unused: {} tensors", model_dir.display(), report.newly_initialised, report.unused.len());
    let model = Model { vs, net, cfg, source_dir: model_dir, encoder, task, pad_to_multiple_of: args.train.pad_to_multiple_of };

    let run = RunContext {
        output_dir: out,
        resume: args.resume.clone(),
        fingerprint: json!({
            "command": "glue", "task": task.name(), "model": args.model_name_or_path,
            "model_weights_sha256": crate::train::resume::file_hash(&checkpoint::weights_file(&model.source_dir)?)?,
            "train_file_sha256": crate::train::resume::file_hash(&tsv("train"))?,
            "max_train_samples": args.max_train_samples, "max_seq_length": args.max_seq_length,
        })
        .as_object()
        .cloned()
        .expect("object literal"),
    };
    let mut work = GlueWork {
        model: &model,
        train: &train,
        evals: &evals,
        eval_batch_size: args.per_device_eval_batch_size,
        pad_to_multiple_of: args.train.pad_to_multiple_of,
        best_dir: out.join("best_model"),
    };
    let summary = trainer::train(&model.vs, train.examples.len(), &args.train, &mut work, &run)?;
    if args.load_best_model_at_end && summary.best.is_some() {
        checkpoint::load_into(&model.vs, &out.join("best_model"))?;
    }

    results.insert("epoch".into(), json!(summary.epoch));
    for (split, data) in &evals {
        let (scores, loss, logits) = model.evaluate(data, args.per_device_eval_batch_size)?;
        // Logits of the final model, for side-by-side checks against transformers (tools/check_hf_load.py).
        let rows: Vec<Vec<f32>> = Vec::<Vec<f32>>::try_from(logits)?;
        crate::io::write_json(&out.join(format!("eval_logits{}.json", split.key_suffix)), &rows)?;
        insert_prefixed(&mut results, &scores, split.key_suffix);
        results.insert(format!("eval_loss{}", split.key_suffix), json!(loss));
        results.insert(format!("eval_samples{}", split.key_suffix), json!(data.examples.len()));
    }
    model.save(out)?;
    if args.do_predict {
        for split in task.eval_splits() {
            let test = load_split(task, &model.encoder, &tsv(split.test_file), false, None)?;
            let logits = model.logits(&test.features, args.per_device_eval_batch_size);
            let pred = model.predictions(&logits)?;
            write_predictions(&out.join(format!("predict_results_{}{}.txt", task.name(), split.predict_name)), task, &test.examples, &pred)?;
        }
    }
    let mean_len = train.features.iter().map(|f| f.input_ids.len() as f64).sum::<f64>() / train.features.len().max(1) as f64;
    let flops = crate::train::cost::bert_train_flops(&model.cfg, task.num_labels(), summary.examples_seen as f64 * mean_len, mean_len);
    let mut train_results = summary.results(train.examples.len(), args.device);
    train_results.insert("train_flops_estimate".into(), json!(flops));
    train_results.insert("train_mean_seq_length".into(), json!(mean_len));
    crate::io::write_json(&out.join("train_results.json"), &train_results)?;
    crate::eval::plots::learning_curves(&out.join("train_log.jsonl"), &out.join("train_curves.png"), &format!("{} seed {}", task.name(), args.train.seed))?;
    finish(out, results)
}

/// Writes `eval_results.json` and returns what it holds.
pub(crate) fn finish(out: &Path, results: Map<String, Value>) -> Result<Map<String, Value>> {
    // Sorted keys, as run_glue.py writes them; no timings, so equal runs give equal bytes.
    let sorted: Map<String, Value> = {
        let mut v: Vec<_> = results.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().collect()
    };
    crate::io::write_json(&out.join("eval_results.json"), &sorted)?;
    Ok(sorted)
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
    }
}

/// run_glue.py's prediction file: `index<TAB>prediction`, label names or scores to 3 decimals.
fn write_predictions(path: &Path, task: Task, examples: &[Example], pred: &Predictions) -> Result<()> {
    let mut s = String::from("index\tprediction\n");
    match pred {
        Predictions::Classes(p) => {
            let names = task.labels().expect("classification task");
            for (e, &c) in examples.iter().zip(p) {
                s += &format!("{}\t{}\n", e.id, names[c as usize]);
            }
        }
        Predictions::Scores(p) => {
            for (e, v) in examples.iter().zip(p) {
                s += &format!("{}\t{:.3}\n", e.id, v);
            }
        }
    }
    crate::io::write_atomic(path, s.as_bytes())
}
