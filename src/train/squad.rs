//! The SQuAD fine-tuning job behind `finetune squad`: read the train and dev JSON, build
//! doc-stride windows, fine-tune a `BertForQuestionAnswering`, post-process the dev logits into
//! answers and score them with the official evaluation. Writes run_qa.py's outputs:
//! `predictions.json`, `nbest_predictions.json`, `null_odds.json` (v2.0), `eval_results.json`,
//! and an HF model directory.
use crate::data::batch::{collate, upload};
use crate::data::qa_features::{self, QaConfig, QaFeature};
use crate::data::squad::{self, SquadExample};
use crate::error::{Error, Result};
use crate::eval::qa_post::{PostConfig, Predictions};
use crate::eval::squad::{evaluate, Question};
use crate::infer::qa::{load_model, QaModel};
use crate::model::checkpoint;
use crate::model::hub;
use crate::train::args::{ResumeFrom, TrainArgs};
use crate::train::distill::{self, DistillArgs, TeacherRows};
use crate::train::kd::span_kd_loss;
use crate::train::trainer::{self, Evaluation, RunContext, Workload};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

#[derive(Debug, Clone, serde::Serialize)]
pub struct SquadArgs {
    pub model_name_or_path: String,
    pub train_file: PathBuf,
    pub dev_file: PathBuf,
    pub output_dir: PathBuf,
    pub version_2_with_negative: bool,
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub max_query_length: usize,
    pub n_best_size: usize,
    pub max_answer_length: usize,
    pub null_score_diff_threshold: f64,
    pub per_device_eval_batch_size: usize,
    pub train: TrainArgs,
    #[serde(serialize_with = "crate::run_info::serialize_device")]
    pub device: Device,
    pub max_train_samples: Option<usize>,
    pub max_eval_samples: Option<usize>,
    pub resume: Option<ResumeFrom>,
    /// Train the model as a student of this teacher (`finetune distill squad`).
    pub distill: Option<DistillArgs>,
}

impl SquadArgs {
    fn qa(&self) -> QaConfig {
        QaConfig { max_seq_length: self.max_seq_length, doc_stride: self.doc_stride, max_query_length: self.max_query_length }
    }
    fn post(&self) -> PostConfig {
        PostConfig {
            n_best_size: self.n_best_size,
            max_answer_length: self.max_answer_length,
            version_2: self.version_2_with_negative,
            null_score_diff_threshold: self.null_score_diff_threshold,
        }
    }
}

fn questions(examples: &[SquadExample]) -> Vec<Question> {
    examples.iter().map(|e| Question { id: e.id.clone(), answers: e.answers.iter().map(|a| a.text.clone()).collect() }).collect()
}

/// Official scores with run_qa's `eval_` key names.
fn score(examples: &[SquadExample], p: &Predictions, v2: bool) -> Map<String, Value> {
    let null_odds = v2.then_some(&p.null_odds);
    let r = evaluate(&questions(examples), &p.predictions, v2, null_odds, 1.0);
    r.as_object().into_iter().flatten().map(|(k, v)| (format!("eval_{k}"), v.clone())).collect()
}

struct SquadWork<'a> {
    model: &'a QaModel,
    train: &'a [QaFeature],
    dev: &'a [SquadExample],
    args: &'a SquadArgs,
    best_dir: PathBuf,
    /// The teacher's start and end logits of every training feature, when distilling (and the
    /// teacher, when its hidden states are compared).
    teacher: Option<(TeacherRows, &'a DistillArgs, Option<QaModel>)>,
}

impl Workload for SquadWork<'_> {
    fn lengths(&self) -> Option<Vec<usize>> {
        Some(self.train.iter().map(|f| f.features.input_ids.len()).collect())
    }

    fn batch(&mut self, indices: &[usize], _step: usize) -> Result<Vec<Tensor>> {
        let m = self.model;
        let device = m.vs.device();
        let b = collate(self.train, indices, m.pad_id, self.args.train.pad_to_multiple_of, device);
        let pos = |f: fn(&QaFeature) -> i64| upload(Tensor::from_slice(&indices.iter().map(|&i| f(&self.train[i])).collect::<Vec<i64>>()), device);
        let teacher = self.teacher.as_ref().map(|(t, _, _)| t.batch(indices, b.input_ids.size()[1], device));
        Ok([b.input_ids, b.token_type_ids, b.attention_mask, pos(|f| f.start_position), pos(|f| f.end_position)].into_iter().chain(teacher).collect())
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        let net = &self.model.net;
        let Some((_, d, teacher)) = &self.teacher else { return Ok(net.batch_loss(b)) };
        let mut states = Vec::new();
        let (start, end) = net.forward_states(&b[0], &b[1], &b[2], true, teacher.is_some().then_some(&mut states));
        let loss = span_kd_loss(&start, &end, &b[5].select(2, 0), &b[5].select(2, 1), &b[2], &b[3], &b[4], d.alpha, d.temperature);
        Ok(distill::plus_hidden_term(loss, teacher.as_ref().map(|t| &t.net.encoder), false, b, &states, d.hidden_loss_weight))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let (p, _) = self.model.predict(self.dev, self.args.qa(), self.args.post(), self.args.per_device_eval_batch_size)?;
        let metrics = score(self.dev, &p, self.args.version_2_with_negative);
        let objective = metrics.get("eval_f1").and_then(Value::as_f64).unwrap_or(f64::NAN);
        Ok(Evaluation { metrics, objective })
    }

    fn on_best(&mut self, _step: usize, _eval: &Evaluation) -> Result<()> {
        self.model.save(&self.best_dir)
    }
}

fn read_limited(path: &Path, limit: Option<usize>) -> Result<(Vec<SquadExample>, bool)> {
    let mut d = squad::read(path)?;
    d.examples.truncate(limit.unwrap_or(usize::MAX));
    Ok((d.examples, d.v2))
}

pub fn run(args: &SquadArgs) -> Result<Map<String, Value>> {
    let out = &args.output_dir;
    let reads = [
        ("the --model directory", Some(Path::new(&args.model_name_or_path))),
        ("the --teacher directory", args.distill.as_ref().map(|d| d.teacher.as_path())),
        ("the --train-file", Some(args.train_file.as_path())),
        ("the --dev-file", Some(args.dev_file.as_path())),
    ];
    // The training arguments checked before the first write: a refused run leaves nothing behind.
    args.train.validate()?;
    crate::train::output_dir::prepare(out, args.resume.is_some(), args.train.overwrite_output_dir, &reads)?;
    let model_dir = match &args.distill {
        Some(d) => d.student(&args.model_name_or_path, out)?,
        None => hub::resolve(&args.model_name_or_path)?,
    };
    let (train, train_v2) = read_limited(&args.train_file, args.max_train_samples)?;
    let (dev, dev_v2) = read_limited(&args.dev_file, args.max_eval_samples)?;
    if (train_v2 || dev_v2) && !args.version_2_with_negative {
        return Err(Error::Invalid("the data has unanswerable questions (SQuAD 2.0): pass --version-2-with-negative".into()));
    }
    tch::manual_seed(args.train.seed as i64);
    let (model, new) = load_model(&model_dir, args.device)?;
    model.cfg.refuse_quantized(&model_dir.join("config.json"))?;
    model.cfg.check_seq_length(args.max_seq_length, &model_dir.join("config.json"))?;
    tracing::info!("loaded {}; newly initialised: {new:?}", model_dir.display());
    let tok = qa_features::window_tokenizer(&model.tokenizer, args.qa())?;
    let train_feats = qa_features::build(&tok, &train, args.qa(), true)?;
    if !train_feats.mismatched_answers.is_empty() {
        tracing::warn!(
            "{} training answers do not match their context and were skipped (first: {})",
            train_feats.mismatched_answers.len(),
            train_feats.mismatched_answers[0]
        );
    }
    tracing::info!("{} training questions → {} features; {} dev questions", train.len(), train_feats.features.len(), dev.len());
    let fingerprint = json!({
        "command": "squad", "model": args.model_name_or_path,
        "model_weights_sha256": crate::train::resume::file_hash(&checkpoint::weights_file(&model_dir)?)?,
        "train_file_sha256": crate::train::resume::file_hash(&args.train_file)?,
        "max_train_samples": args.max_train_samples, "max_seq_length": args.max_seq_length,
        "doc_stride": args.doc_stride, "max_query_length": args.max_query_length,
    });
    let fingerprint = distill::with_fingerprint(fingerprint, args.distill.as_ref())?;
    let run = RunContext { output_dir: out, resume: args.resume.clone(), fingerprint };
    let teacher = args.distill.as_ref().map(|d| squad_teacher(d, &model, &train, &train_feats.features, args).map(|(rows, t)| (rows, d, t))).transpose()?;
    // Written once every check has passed, the teacher's too: a refused run leaves no run config
    // that would make its corrected rerun "already hold a run".
    crate::io::write_json(&out.join("run_config.json"), &json!({
        "command": "squad", "args": args, "model_dir": model_dir, "model_config": model.cfg,
        "train_examples": train.len(), "train_features": train_feats.features.len(),
        "skipped_mismatched_answers": train_feats.mismatched_answers, "environment": crate::run_info::environment(args.device),
    }))?;
    let mut work = SquadWork { model: &model, train: &train_feats.features, dev: &dev, args, best_dir: out.join("best_model"), teacher };
    let summary = trainer::train(&model.vs, train_feats.features.len(), &args.train, &mut work, &run)?;

    let (pred, n_features) = model.predict(&dev, args.qa(), args.post(), args.per_device_eval_batch_size)?;
    crate::io::write_json(&out.join("predictions.json"), &pred.predictions)?;
    crate::io::write_json(&out.join("nbest_predictions.json"), &pred.nbest)?;
    if args.version_2_with_negative {
        crate::io::write_json(&out.join("null_odds.json"), &pred.null_odds)?;
    }
    let mut results = score(&dev, &pred, args.version_2_with_negative);
    results.insert("epoch".into(), json!(summary.epoch));
    results.insert("eval_samples".into(), json!(n_features));
    model.save(out)?;
    crate::io::write_json(&out.join("train_results.json"), &summary.results(train_feats.features.len(), args.device))?;
    crate::eval::plots::learning_curves(&out.join("train_log.jsonl"), &out.join("train_curves.png"), &format!("squad seed {}", args.train.seed))?;
    crate::io::write_json_sorted(&out.join("eval_results.json"), results)
}

/// The teacher's start and end logits of every training feature, `[len, 2]` each (and the
/// teacher, when its hidden states are compared), after checking that it is a fine-tuned QA model
/// that reads the student's token ids.
fn squad_teacher(d: &DistillArgs, student: &QaModel, train: &[SquadExample], feats: &[QaFeature], args: &SquadArgs) -> Result<(TeacherRows, Option<QaModel>)> {
    distill::teacher_config(d, &student.cfg, None, "squad")?;
    let device = student.vs.device();
    let teacher = crate::infer::qa::load_trained(&d.teacher, device)?;
    let tok = qa_features::window_tokenizer(&teacher.tokenizer, args.qa())?;
    let read = qa_features::build(&tok, train, args.qa(), true)?;
    distill::check_same_ids(&d.teacher, &read.features, feats, (teacher.cfg.vocab_size, student.cfg.vocab_size))?;
    let (start, end) = crate::infer::qa::qa_logits(&teacher.net, feats, teacher.pad_id, args.per_device_eval_batch_size, device);
    let parts: Vec<Tensor> = start.iter().zip(&end).map(|(s, e)| Tensor::stack(&[Tensor::from_slice(s), Tensor::from_slice(e)], 1)).collect();
    tracing::info!("teacher {}: start and end logits of {} training features computed", d.teacher.display(), feats.len());
    Ok((TeacherRows::new(&parts), (d.hidden_loss_weight > 0.0).then_some(teacher)))
}

/// Splits a SQuAD file into train and dev files by whole articles (seeded), so no paragraph of a
/// dev article was seen in training. Returns (train articles, dev articles).
pub fn split(input: &Path, dev_fraction: f64, seed: u64, out_dir: &Path) -> Result<(usize, usize)> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    squad::read(input)?;
    let root: Value = serde_json::from_slice(&crate::io::read(input)?).map_err(|e| Error::Json { path: input.into(), source: e })?;
    let articles = root["data"].as_array().cloned().unwrap_or_default();
    if !(0.0..1.0).contains(&dev_fraction) {
        return Err(Error::Invalid(format!("dev fraction {dev_fraction} must lie in [0, 1)")));
    }
    let mut idx: Vec<usize> = (0..articles.len()).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let n_dev = ((articles.len() as f64 * dev_fraction).ceil() as usize).min(articles.len().saturating_sub(1));
    let mut dev_idx = idx[..n_dev].to_vec();
    dev_idx.sort();
    let version = root.get("version").cloned().unwrap_or(json!("1.1"));
    let pick = |keep: &dyn Fn(usize) -> bool| json!({ "version": version, "data": (0..articles.len()).filter(|&i| keep(i)).map(|i| articles[i].clone()).collect::<Vec<_>>() });
    crate::io::write_atomic(&out_dir.join("dev.json"), pick(&|i| dev_idx.binary_search(&i).is_ok()).to_string().as_bytes())?;
    crate::io::write_atomic(&out_dir.join("train.json"), pick(&|i| dev_idx.binary_search(&i).is_err()).to_string().as_bytes())?;
    Ok((articles.len() - n_dev, n_dev))
}
