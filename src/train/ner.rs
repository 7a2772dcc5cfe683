//! The job behind `finetune ner` (run_ner.py's): read CoNLL or JSON lines files (tags to IOB2),
//! take the sorted training tags as labels, build run_ner's features, fine-tune a
//! `…ForTokenClassification` and score it with seqeval's entity-level precision / recall / F1,
//! per type, and token accuracy. Writes `eval_results.json` (HF key names), `predictions.txt`
//! (CoNLL: token, gold, predicted, for conlleval), test-file results and an HF model directory.
//! Also the CoNLL-2003 shared task's lexicon baseline and `ner eval` of a saved model.
use crate::data::batch::{collate, upload};
use crate::data::conll::{self, ReadOptions, Sentence, TagScheme};
use crate::data::ner_features::{self, NerFeature, IGNORE};
use crate::error::Result;
use crate::eval::seqeval::{self, metrics};
use crate::infer::ner::NerModel;
use crate::model::checkpoint;
use crate::model::hub;
use crate::train::args::{ResumeFrom, TrainArgs};
use crate::train::distill::{self, DistillArgs, TeacherRows};
use crate::train::kd::token_kd_loss;
use crate::train::trainer::{self, Evaluation, RunContext, Workload};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

#[derive(Debug, Clone, serde::Serialize)]
pub struct NerArgs {
    pub model_name_or_path: String,
    pub train_file: PathBuf,
    pub validation_file: PathBuf,
    pub test_file: Option<PathBuf>,
    pub read: ReadOptions,
    /// Label names in id order; default: the training tags (IOB2), sorted.
    pub label_list: Option<Vec<String>>,
    pub label_all_tokens: bool,
    /// Default: the tokenizer's `model_max_length`, at most the model's positions (run_ner's).
    pub max_seq_length: Option<usize>,
    pub per_device_eval_batch_size: usize,
    pub output_dir: PathBuf,
    pub train: TrainArgs,
    #[serde(serialize_with = "crate::run_info::serialize_device")]
    pub device: Device,
    pub max_train_samples: Option<usize>,
    pub max_eval_samples: Option<usize>,
    pub resume: Option<ResumeFrom>,
    /// Train the model as a student of this teacher (`finetune distill ner`).
    pub distill: Option<DistillArgs>,
}

/// The default `max_seq_length`: tokenizer_config.json's `model_max_length` when the positions
/// cover it, else what the positions allow.
fn default_max_seq_length(dir: &Path, cfg: &crate::model::config::BertConfig) -> Result<usize> {
    let usable = (cfg.max_position_embeddings - cfg.position_offset()) as usize;
    let config = crate::io::read_json_object(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    Ok(config.get("model_max_length").and_then(Value::as_u64).map_or(usable, |m| (m as usize).min(usable)))
}

struct NerWork<'a> {
    model: &'a NerModel,
    train: &'a [NerFeature],
    dev: &'a [NerFeature],
    args: &'a NerArgs,
    best_dir: PathBuf,
    /// The teacher's logits of every training feature, when distilling (and the teacher, when
    /// its hidden states are compared).
    teacher: Option<(TeacherRows, &'a DistillArgs, Option<NerModel>)>,
}

impl Workload for NerWork<'_> {
    fn lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.iter().map(|f| f.features.input_ids.len()).collect())
    }

    fn batch(&mut self, indices: &[usize], _step: usize) -> Result<Vec<Tensor>> {
        let m = self.model;
        let device = m.vs.device();
        let b = collate(self.train, indices, m.pad_id, self.args.train.pad_to_multiple_of, device);
        let width = b.input_ids.size()[1] as usize;
        let labels: Vec<i64> = indices.iter().flat_map(|&i| self.train[i].labels.iter().copied().chain(std::iter::repeat(IGNORE)).take(width)).collect();
        let labels = upload(Tensor::from_slice(&labels).view([indices.len() as i64, width as i64]), device);
        let mut b = vec![b.input_ids, b.token_type_ids, b.attention_mask, labels];
        if let Some((t, _, _)) = &self.teacher {
            b.push(t.batch(indices, width as i64, device));
        }
        Ok(b)
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        let net = &self.model.net;
        let Some((_, d, teacher)) = &self.teacher else { return Ok(net.batch_loss(b)) };
        let mut states = Vec::new();
        let logits = net.forward_states(&b[0], &b[1], &b[2], true, teacher.is_some().then_some(&mut states));
        let loss = token_kd_loss(&logits, &b[4], &b[3], d.alpha, d.temperature);
        Ok(distill::plus_hidden_term(loss, teacher.as_ref().map(|t| &t.net.encoder), true, b, &states, d.hidden_loss_weight))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let (metrics, f1, _) = run_ner_scores(self.model, self.dev, self.args.per_device_eval_batch_size, "eval");
        Ok(Evaluation { metrics, objective: f1 })
    }

    fn on_best(&mut self, _step: usize, _eval: &Evaluation) -> Result<()> {
        self.model.save(&self.best_dir)
    }
}

fn read_limited(path: &Path, opts: &ReadOptions, limit: Option<usize>) -> Result<(Vec<Sentence>, TagScheme)> {
    let (mut s, scheme) = conll::read(path, opts)?;
    s.truncate(limit.unwrap_or(usize::MAX));
    Ok((s, scheme))
}

/// CoNLL lines `token gold predicted`, a blank line after each sentence (conlleval's input).
pub fn predictions_conll(sentences: &[Sentence], predicted: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (s, p) in sentences.iter().zip(predicted) {
        for ((tok, gold), pred) in s.tokens.iter().zip(&s.tags).zip(p) {
            out.push_str(&format!("{tok} {gold} {pred}\n"));
        }
        out.push('\n');
    }
    out
}

/// run_ner's figures and loss of `feats` under `prefix` (`eval_f1`, `eval_loss`, ...), the
/// overall F1, and the logits they came from.
fn run_ner_scores(model: &NerModel, feats: &[NerFeature], batch_size: usize, prefix: &str) -> (Map<String, Value>, f64, Vec<Tensor>) {
    let logits = model.logits(feats, batch_size);
    let (scores, loss) = model.evaluate(feats, &logits);
    let mut m = metrics(prefix, &scores);
    m.insert(format!("{prefix}_loss"), json!(loss));
    (m, scores.overall.f1, logits)
}

/// Scores a labelled split from one pass of the model: `run_ner_scores`, and every word's
/// (truncated ones predicted `O`) under `{prefix}_words`; writes its `predictions.txt`-style
/// output to `out`.
fn score_split(model: &NerModel, sentences: &[Sentence], feats: &[NerFeature], batch_size: usize, prefix: &str, out: &Path) -> Result<Map<String, Value>> {
    let (mut m, _, logits) = run_ner_scores(model, feats, batch_size, prefix);
    let predicted = model.word_tags(sentences, feats, &logits);
    crate::io::write_atomic(out, predictions_conll(sentences, &predicted).as_bytes())?;
    let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
    m.extend(metrics(&format!("{prefix}_words"), &seqeval::score(&gold, &predicted)));
    Ok(m)
}

/// What a NER run reads, each with its flag, for `output_dir::prepare`.
fn reads(args: &NerArgs) -> [(&'static str, Option<&Path>); 5] {
    [
        ("the --model directory", Some(Path::new(&args.model_name_or_path))),
        ("the --teacher directory", args.distill.as_ref().map(|d| d.teacher.as_path())),
        ("the --train-file", Some(args.train_file.as_path())),
        ("the --validation-file", Some(args.validation_file.as_path())),
        ("the --test-file", args.test_file.as_deref()),
    ]
}

pub fn run(args: &NerArgs) -> Result<Map<String, Value>> {
    let out = &args.output_dir;
    let reads = reads(args);
    // The training arguments checked before the first write: a refused run leaves nothing behind.
    args.train.validate()?;
    crate::train::output_dir::prepare(out, args.resume.is_some(), args.train.overwrite_output_dir, &reads)?;
    let model_dir = match &args.distill {
        Some(d) => d.student(&args.model_name_or_path, out)?,
        None => hub::resolve(&args.model_name_or_path)?,
    };
    let (train, scheme) = read_limited(&args.train_file, &args.read, args.max_train_samples)?;
    let (dev, _) = read_limited(&args.validation_file, &args.read, args.max_eval_samples)?;
    let labels = args.label_list.clone().unwrap_or_else(|| conll::label_list(&train));
    conll::check_labels(&args.train_file, &train, &labels)?;
    conll::check_labels(&args.validation_file, &dev, &labels)?;
    tch::manual_seed(args.train.seed as i64);
    let (model, new) = NerModel::load(&model_dir, Some(labels.clone()), args.device)?;
    let config_path = model_dir.join("config.json");
    model.cfg.refuse_quantized(&config_path)?;
    let max_len = match args.max_seq_length {
        Some(m) => m,
        None => default_max_seq_length(&model_dir, &model.cfg)?,
    };
    model.cfg.check_seq_length(max_len, &config_path)?;
    tracing::info!("loaded {}; newly initialised: {new:?}; tags read as {scheme:?}, labels {labels:?}", model_dir.display());
    let tok = ner_features::tokenizer(&model.tokenizer, max_len)?;
    let train_feats = ner_features::build(&tok, &train, &labels, args.label_all_tokens)?;
    let dev_feats = ner_features::build(&tok, &dev, &labels, false)?;
    for (what, f) in [("training", &train_feats), ("validation", &dev_feats)] {
        if f.truncated > 0 {
            tracing::warn!("{} of {} {what} sentences are longer than max_seq_length {max_len} and were truncated", f.truncated, f.features.len());
        }
    }
    let fingerprint = json!({
        "command": "ner", "model": args.model_name_or_path,
        "model_weights_sha256": crate::train::resume::file_hash(&checkpoint::weights_file(&model_dir)?)?,
        "train_file_sha256": crate::train::resume::file_hash(&args.train_file)?,
        "max_train_samples": args.max_train_samples, "max_seq_length": max_len, "labels": labels,
        "label_all_tokens": args.label_all_tokens,
    });
    let fingerprint = distill::with_fingerprint(fingerprint, args.distill.as_ref())?;
    let run = RunContext { output_dir: out, resume: args.resume.clone(), fingerprint };
    let teacher = args.distill.as_ref().map(|d| ner_teacher(d, &model, max_len, &train, &train_feats.features, args).map(|(rows, t)| (rows, d, t))).transpose()?;
    // Written once every check has passed, the teacher's too: a refused run leaves no run config
    // that would make its corrected rerun "already hold a run".
    crate::io::write_json(&out.join("run_config.json"), &json!({
        "command": "ner", "args": args, "model_dir": model_dir, "model_config": model.cfg, "labels": labels,
        "tag_scheme": scheme, "max_seq_length": max_len, "train_sentences": train.len(), "validation_sentences": dev.len(),
        "truncated_train_sentences": train_feats.truncated, "truncated_validation_sentences": dev_feats.truncated,
        "environment": crate::run_info::environment(args.device),
    }))?;
    let mut work = NerWork { model: &model, train: &train_feats.features, dev: &dev_feats.features, args, best_dir: out.join("best_model"), teacher };
    let summary = trainer::train(&model.vs, train_feats.features.len(), &args.train, &mut work, &run)?;

    let mut results = score_split(&model, &dev, &dev_feats.features, args.per_device_eval_batch_size, "eval", &out.join("predictions.txt"))?;
    results.insert("epoch".into(), json!(summary.epoch));
    results.insert("eval_samples".into(), json!(dev.len()));
    if let Some(test) = &args.test_file {
        let (sentences, _) = conll::read(test, &args.read)?;
        conll::check_labels(test, &sentences, &labels)?;
        let feats = ner_features::build(&tok, &sentences, &labels, false)?;
        let test_results = score_split(&model, &sentences, &feats.features, args.per_device_eval_batch_size, "test", &out.join("test_predictions.txt"))?;
        crate::io::write_json_sorted(&out.join("test_results.json"), test_results)?;
    }
    model.save(out)?;
    crate::io::write_json(&out.join("train_results.json"), &summary.results(train_feats.features.len(), args.device))?;
    crate::eval::plots::learning_curves(&out.join("train_log.jsonl"), &out.join("train_curves.png"), &format!("ner seed {}", args.train.seed))?;
    crate::io::write_json_sorted(&out.join("eval_results.json"), results)
}

/// The teacher's logits of every training feature (and the teacher, when its hidden states are
/// compared), after checking that it tags with the student's labels and reads the student's
/// token ids.
fn ner_teacher(d: &DistillArgs, student: &NerModel, max_len: usize, train: &[Sentence], feats: &[NerFeature], args: &NerArgs) -> Result<(TeacherRows, Option<NerModel>)> {
    distill::teacher_config(d, &student.cfg, Some(&student.labels), "ner")?;
    let (teacher, _) = NerModel::load(&d.teacher, None, student.vs.device())?;
    let tok = ner_features::tokenizer(&teacher.tokenizer, max_len)?;
    let read = ner_features::build(&tok, train, &student.labels, args.label_all_tokens)?;
    distill::check_same_ids(&d.teacher, &read.features, feats, (teacher.cfg.vocab_size, student.cfg.vocab_size))?;
    let rows = TeacherRows::new(&teacher.logits(feats, args.per_device_eval_batch_size));
    tracing::info!("teacher {}: logits of {} training features computed", d.teacher.display(), feats.len());
    Ok((rows, (d.hidden_loss_weight > 0.0).then_some(teacher)))
}

/// `finetune ner eval`: a saved model on any file; writes `predictions.txt` into `out` and returns
/// run_ner's metrics (`eval_…`) and the every-word ones (`eval_words_…`).
pub fn evaluate_file(model_dir: &Path, file: &Path, read: &ReadOptions, max_seq_length: Option<usize>, batch_size: usize, device: Device, out: &Path) -> Result<Map<String, Value>> {
    let (model, _) = NerModel::load(model_dir, None, device)?;
    let (sentences, _) = conll::read(file, read)?;
    conll::check_labels(file, &sentences, &model.labels)?;
    let max_len = match max_seq_length {
        Some(m) => m,
        None => default_max_seq_length(model_dir, &model.cfg)?,
    };
    let tok = ner_features::tokenizer(&model.tokenizer, max_len)?;
    let feats = ner_features::build(&tok, &sentences, &model.labels, false)?;
    let mut m = score_split(&model, &sentences, &feats.features, batch_size, "eval", &out.join("predictions.txt"))?;
    m.insert("eval_samples".into(), json!(sentences.len()));
    Ok(m)
}

/// `finetune ner --baseline lexicon`: the baseline's scores on the validation (and test) file,
/// with its predictions in CoNLL format.
pub fn run_baseline(args: &NerArgs) -> Result<Map<String, Value>> {
    let out = &args.output_dir;
    let reads = reads(args);
    crate::train::output_dir::prepare(out, false, args.train.overwrite_output_dir, &reads)?;
    let (train, _) = conll::read(&args.train_file, &args.read)?;
    let mut results = Map::new();
    let files = std::iter::once(("eval", &args.validation_file, "predictions.txt")).chain(args.test_file.iter().map(|t| ("test", t, "test_predictions.txt")));
    for (prefix, path, name) in files {
        let (sentences, _) = conll::read(path, &args.read)?;
        let predicted = crate::eval::lexicon::tag(&train, &sentences);
        crate::io::write_atomic(&out.join(name), predictions_conll(&sentences, &predicted).as_bytes())?;
        let gold: Vec<Vec<String>> = sentences.iter().map(|s| s.tags.clone()).collect();
        results.extend(metrics(prefix, &seqeval::score(&gold, &predicted)));
    }
    results.insert("baseline".into(), json!("lexicon"));
    crate::io::write_json_sorted(&out.join("eval_results.json"), results)
}
