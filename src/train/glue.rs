//! The GLUE fine-tuning job behind `finetune glue`: read the task's splits, tokenise, load the
//! checkpoint with a fresh classification head, train, evaluate with the official metric, and
//! write run_glue.py-compatible outputs (eval_results.json, predictions, an HF model directory).
use crate::data::batch::Labels;
use crate::data::glue::{self, Example, Split, Task};
use crate::data::tokenize::{load_tokenizer, TextEncoder};
use crate::error::Result;
use crate::eval::glue::{objective, score, Predictions, Scores};
use crate::model::checkpoint;
use crate::model::config::BertConfig;
use crate::model::hub;
use crate::train::args::{ResumeFrom, TrainArgs};
use crate::train::distill::{teacher_logits, DistillArgs, DistillWork};
use crate::train::seq_cls::{self, Encoded, Model, Work};
use crate::train::trainer::{self, RunContext};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

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
    /// Train the model as a student of this teacher (`finetune distill`).
    pub distill: Option<DistillArgs>,
}

fn load_split(task: Task, enc: &TextEncoder, path: &Path, labelled: bool, limit: Option<usize>) -> Result<(Vec<Example>, Encoded)> {
    let mut examples = if labelled { glue::read_labelled(task, path)? } else { glue::read_unlabelled(task, path)? };
    if let Some(n) = limit {
        examples.truncate(n);
    }
    let features = enc.encode(examples.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())))?;
    let labels = if labelled { Labels::from_targets(examples.iter().map(|e| e.target)) } else { None };
    Ok((examples, Encoded { features, labels }))
}

/// Predicted classes (argmax) or scores of a task's logits.
fn predictions(task: Task, logits: &Tensor) -> Result<Predictions> {
    Ok(if task.is_regression() {
        Predictions::Scores(Vec::<f64>::try_from(logits.squeeze_dim(-1).to_kind(Kind::Double))?)
    } else {
        Predictions::Classes(Vec::<i64>::try_from(logits.argmax(-1, false))?)
    })
}

/// The task's official metrics of a split's logits, and `combined_score` (or the one metric) to
/// maximise.
fn scorer(task: Task) -> impl Fn(&Tensor, &Labels) -> Result<(Scores, f64)> {
    move |logits, labels| {
        let scores = score(task, &predictions(task, logits)?, labels);
        let o = objective(&scores);
        Ok((scores, o))
    }
}

/// Runs the job; returns the contents written to `eval_results.json`.
pub fn run(args: &GlueArgs) -> Result<Map<String, Value>> {
    let task = args.task;
    let out = &args.output_dir;
    let reads = [
        ("the --model directory", Some(Path::new(&args.model_name_or_path))),
        ("the --teacher directory", args.distill.as_ref().map(|d| d.teacher.as_path())),
        ("the --data-dir", Some(args.data_dir.as_path())),
    ];
    // The training arguments checked before the first write: a refused run leaves nothing behind.
    args.train.validate()?;
    crate::train::output_dir::prepare(out, args.resume.is_some(), args.train.overwrite_output_dir, &reads)?;
    let model_dir = match &args.distill {
        Some(d) => d.student(&args.model_name_or_path, out)?,
        None => hub::resolve(&args.model_name_or_path)?,
    };
    let cfg = BertConfig::from_file(&model_dir.join("config.json"))?;
    cfg.refuse_quantized(&model_dir.join("config.json"))?;
    if let Some(n) = cfg.num_labels().filter(|&n| n != task.num_labels()) {
        tracing::warn!("checkpoint was fine-tuned with {n} labels; {} needs {}", task.name(), task.num_labels());
    }
    cfg.check_seq_length(args.max_seq_length, &model_dir.join("config.json"))?;
    let encoder = TextEncoder::new(load_tokenizer(&model_dir)?, args.max_seq_length)?;
    let task_dir = task.task_dir(&args.data_dir);
    let tsv = |stem: &str| task_dir.join(format!("{stem}.tsv"));
    let (train_examples, train) = load_split(task, &encoder, &tsv("train"), true, args.max_train_samples)?;
    let evals: Vec<(Split, Encoded)> = task
        .eval_splits()
        .iter()
        .map(|s| Ok((*s, load_split(task, &encoder, &tsv(s.file), true, args.max_eval_samples)?.1)))
        .collect::<Result<_>>()?;

    let env = crate::run_info::environment(args.device);
    crate::io::write_json(&out.join("run_config.json"), &json!({
        "command": "glue", "args": args, "model_dir": model_dir, "model_config": cfg,
        "train_examples": train_examples.len(), "environment": env,
    }))?;

    if let Some(Baseline::Majority) = args.baseline {
        let baseline = crate::eval::glue::majority_baseline(task, &args.data_dir, args.max_train_samples, args.max_eval_samples)?;
        return crate::io::write_json_sorted(&out.join("eval_results.json"), baseline);
    }

    tch::manual_seed(args.train.seed as i64);
    let (vs, net, report) = checkpoint::load_sequence_classifier(&model_dir, &cfg, task.num_labels(), args.device)?;
    tracing::info!("loaded {}; newly initialised: {:?}; unused: {} tensors", model_dir.display(), report.newly_initialised, report.unused.len());
    let labels = task.labels().map(|l| l.iter().map(|s| s.to_string()).collect());
    let model = Model { vs, net, cfg, source_dir: model_dir, encoder, labels, task: task.name().into(), pad_to_multiple_of: args.train.pad_to_multiple_of };

    let run = RunContext {
        output_dir: out,
        resume: args.resume.clone(),
        fingerprint: json!({
            "command": "glue", "task": task.name(), "model": args.model_name_or_path,
            "model_weights_sha256": crate::train::resume::file_hash(&checkpoint::weights_file(&model.source_dir)?)?,
            "train_file_sha256": crate::train::resume::file_hash(&tsv("train"))?,
            "max_train_samples": args.max_train_samples, "max_seq_length": args.max_seq_length,
            "distill": crate::train::distill::fingerprint(args.distill.as_ref())?,
        })
        .as_object()
        .cloned()
        .expect("object literal"),
    };
    let score = scorer(task);
    let eval_splits: Vec<(&str, &Encoded)> = evals.iter().map(|(s, e)| (s.key_suffix, e)).collect();
    let mut work = Work { model: &model, train: &train, evals: eval_splits.clone(), scorer: &score, eval_batch_size: args.per_device_eval_batch_size, best_dir: out.join("best_model") };
    let summary = match &args.distill {
        None => trainer::train(&model.vs, train.features.len(), &args.train, &mut work, &run)?,
        Some(d) => {
            let texts: Vec<(&str, Option<&str>)> = train_examples.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())).collect();
            let (teacher, teacher_model) = teacher_logits(d, &model, &train, &texts, args.max_seq_length, args.per_device_eval_batch_size)?;
            tracing::info!("teacher {}: logits of {} training examples computed", d.teacher.display(), train.features.len());
            let mut work = DistillWork { inner: work, teacher, teacher_model, args: d };
            trainer::train(&model.vs, train.features.len(), &args.train, &mut work, &run)?
        }
    };
    if args.load_best_model_at_end && summary.best.is_some() {
        checkpoint::load_into(&model.vs, &out.join("best_model"))?;
    }

    let mut results = Map::new();
    results.insert("epoch".into(), json!(summary.epoch));
    for (suffix, data) in &eval_splits {
        seq_cls::final_evaluation(&model, data, &score, args.per_device_eval_batch_size, out, suffix, &mut results)?;
    }
    model.save(out)?;
    if args.do_predict {
        for split in task.eval_splits() {
            let (examples, test) = load_split(task, &model.encoder, &tsv(split.test_file), false, None)?;
            let logits = model.logits(&test.features, args.per_device_eval_batch_size)?;
            write_predictions(&out.join(format!("predict_results_{}{}.txt", task.name(), split.predict_name)), task, &examples, &predictions(task, &logits)?)?;
        }
    }
    seq_cls::write_train_results(&model, &summary, &train, args.device, out, &format!("{} seed {}", task.name(), args.train.seed))?;
    crate::io::write_json_sorted(&out.join("eval_results.json"), results)
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
