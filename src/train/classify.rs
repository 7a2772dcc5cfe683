//! The job behind `finetune classify`: fine-tune a sequence classifier on the user's own files
//! (run_classification.py's job). Reads the training file (and a validation file, or carves a
//! seeded stratified validation split out of the training file), decides the problem type and the
//! label list, trains single-label (cross-entropy, optionally class-weighted), multi-label (one
//! sigmoid per label, BCE) or regression (MSE), and writes the scores with per-class detail
//! (`classification_report.txt`, confusion matrix), test-file predictions and an HF model
//! directory whose config.json carries `problem_type` and the labels.
use crate::data::classify::{self, Columns, ProblemType, RawExample, Target};
use crate::data::table::{self, Encoding, Format, ReadOptions, Table};
use crate::data::tokenize::{load_tokenizer, TextEncoder};
use crate::error::{Error, Result};
use crate::eval::classification::{self as metrics, main_metric, Report};
use crate::eval::glue::Scores;
use crate::model::checkpoint;
use crate::model::config::BertConfig;
use crate::model::hub;
use crate::train::args::{ResumeFrom, TrainArgs};
use crate::train::seq_cls::{self, Encoded, Model, Work};
use crate::train::trainer::{self, RunContext};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use tch::{Device, Tensor};

/// `--class-weights`: `balanced` weighs each class by n / (k · count) as scikit-learn's
/// `compute_class_weight("balanced")` (multi-label: each label's positives by negatives /
/// positives, BCE's `pos_weight`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    None,
    Balanced,
}

impl FromStr for ClassWeights {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(ClassWeights::None),
            "balanced" => Ok(ClassWeights::Balanced),
            _ => Err(Error::Invalid(format!("class_weights `{s}`; expected balanced or none"))),
        }
    }
}

/// How the files are read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FileSpec {
    pub format: Option<Format>,
    pub encoding: Encoding,
    pub column_names: Option<Vec<String>>,
    pub line_regex: Option<String>,
    pub skip_bad_rows: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassifyArgs {
    pub model_name_or_path: String,
    pub train_file: PathBuf,
    pub validation_file: Option<PathBuf>,
    /// Fraction of the training file held out (stratified, seeded) when no validation file is given.
    pub validation_split: Option<f64>,
    pub test_file: Option<PathBuf>,
    pub files: FileSpec,
    pub columns: Columns,
    /// Label names in id order; default: the training labels, sorted.
    pub label_list: Option<Vec<String>>,
    /// Default: inferred from the training labels.
    pub problem_type: Option<ProblemType>,
    /// Multi-label: a label is predicted where its sigmoid exceeds this.
    pub threshold: f64,
    pub class_weights: ClassWeights,
    pub max_seq_length: usize,
    pub per_device_eval_batch_size: usize,
    pub output_dir: PathBuf,
    pub train: TrainArgs,
    #[serde(serialize_with = "crate::run_info::serialize_device")]
    pub device: Device,
    pub load_best_model_at_end: bool,
    pub max_train_samples: Option<usize>,
    pub max_eval_samples: Option<usize>,
    pub resume: Option<ResumeFrom>,
}

/// A file's examples with their mapped labels.
struct Split {
    raw: Vec<RawExample>,
    targets: Vec<Option<Target>>,
}

impl Split {
    fn pick(&self, idx: &[usize]) -> Split {
        Split { raw: idx.iter().map(|&i| self.raw[i].clone()).collect(), targets: idx.iter().map(|&i| self.targets[i].clone()).collect() }
    }

    fn truncate(&mut self, n: Option<usize>) {
        let n = n.unwrap_or(usize::MAX);
        self.raw.truncate(n);
        self.targets.truncate(n);
    }
}

/// The data of a run, read and checked: problem type, label names, splits, and what the checks
/// found (rows skipped, validation texts that also occur in training).
struct Data {
    problem: ProblemType,
    labels: Option<Vec<String>>,
    train: Split,
    validation: Split,
    summary: Map<String, Value>,
}

fn read_table(path: &Path, f: &FileSpec) -> Result<Table> {
    let line_regex = f.line_regex.as_deref().map(regex::Regex::new).transpose().map_err(|e| Error::Invalid(format!("--line-regex: {e}")))?;
    let format = f.format.or_else(|| line_regex.as_ref().map(|_| Format::Lines));
    table::read(path, &ReadOptions { format, encoding: f.encoding, column_names: f.column_names.clone(), line_regex, skip_bad_rows: f.skip_bad_rows })
}

/// Reads and checks the training and validation data.
fn load_data(args: &ClassifyArgs) -> Result<Data> {
    let mut summary = Map::new();
    let train_table = read_table(&args.train_file, &args.files)?;
    let (train_raw, skipped) = classify::raw_examples(&train_table, &args.columns, true, args.files.skip_bad_rows)?;
    report_skipped(&args.train_file, &skipped, "train", &mut summary);
    if train_raw.is_empty() {
        return Err(Error::file(&args.train_file, "no examples"));
    }
    let problem = match args.problem_type {
        Some(p) => p,
        None => {
            let p = classify::infer_problem_type(&train_raw, args.columns.label_delimiter.is_some());
            for w in classify::check_inferred_labels(&train_table, &train_raw, p, args.label_list.is_some())? {
                tracing::warn!("{}: {w}", args.train_file.display());
            }
            p
        }
    };
    let labels = match problem {
        ProblemType::Regression => None,
        _ => Some(args.label_list.clone().unwrap_or_else(|| classify::label_list_from(&train_raw))),
    };
    let names = labels.as_deref().unwrap_or(&[]);
    let given = args.label_list.is_some();
    let train_targets = classify::map_labels(&train_table, &train_raw, problem, names, given)?;
    let all = Split { raw: train_raw, targets: train_targets };
    let (mut train, mut validation) = match (&args.validation_file, args.validation_split) {
        (Some(_), Some(_)) => return Err(Error::Invalid("give --validation-file or --validation-split, not both".into())),
        (None, None) => return Err(Error::Invalid("give --validation-file, or --validation-split 0.1 to hold out part of the training file".into())),
        (Some(path), None) => {
            let t = read_table(path, &args.files)?;
            let (raw, skipped) = classify::raw_examples(&t, &args.columns, true, args.files.skip_bad_rows)?;
            report_skipped(path, &skipped, "validation", &mut summary);
            let targets = classify::map_labels(&t, &raw, problem, names, given)?;
            (all, Split { raw, targets })
        }
        (None, Some(fraction)) => {
            let (tr, va) = classify::stratified_split(&all.targets, fraction, args.train.seed)?;
            summary.insert("validation_split".into(), json!({ "fraction": fraction, "seed": args.train.seed, "validation_lines": va.iter().map(|&i| all.raw[i].line).collect::<Vec<_>>() }));
            (all.pick(&tr), all.pick(&va))
        }
    };
    train.truncate(args.max_train_samples);
    validation.truncate(args.max_eval_samples);
    if validation.raw.is_empty() {
        return Err(Error::Invalid("the validation split is empty".into()));
    }
    let leaked = classify::leaked(&train.raw, &validation.raw);
    if leaked > 0 {
        tracing::warn!("{leaked} of {} validation examples also occur in the training data (same text): validation scores overstate quality", validation.raw.len());
    }
    summary.insert("train_examples".into(), json!(train.raw.len()));
    summary.insert("validation_examples".into(), json!(validation.raw.len()));
    summary.insert("validation_examples_in_train".into(), json!(leaked));
    summary.insert("label_counts".into(), json!(label_counts(&train.targets, names)));
    Ok(Data { problem, labels, train, validation, summary })
}

fn report_skipped(path: &Path, skipped: &[(usize, String)], split: &str, summary: &mut Map<String, Value>) {
    if skipped.is_empty() {
        return;
    }
    let first: Vec<String> = skipped.iter().take(5).map(|(l, m)| format!("line {l}: {m}")).collect();
    tracing::warn!("{}: skipped {} malformed row(s); first: {}", path.display(), skipped.len(), first.join("; "));
    summary.insert(format!("skipped_rows_{split}"), json!(skipped.len()));
}

/// Training examples per label name (multi-label: rows carrying the label).
fn label_counts(targets: &[Option<Target>], names: &[String]) -> Map<String, Value> {
    let mut counts = vec![0usize; names.len()];
    for t in targets.iter().flatten() {
        match t {
            Target::Class(c) => counts[*c as usize] += 1,
            Target::Classes(v) => v.iter().for_each(|&c| counts[c as usize] += 1),
            Target::Score(_) => {}
        }
    }
    names.iter().zip(counts).map(|(n, c)| (n.clone(), json!(c))).collect()
}

fn encode(enc: &TextEncoder, split: &Split, problem: ProblemType, k: usize) -> Result<Encoded> {
    let features = enc.encode(split.raw.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())))?;
    Ok(Encoded { features, labels: classify::labels_of(&split.targets, problem, k) })
}

/// `--class-weights balanced` as a tensor on `device`.
fn class_weights(targets: &[Option<Target>], problem: ProblemType, k: usize, device: Device) -> Option<Tensor> {
    let n = targets.len() as f64;
    let mut count = vec![0f64; k];
    for t in targets.iter().flatten() {
        match t {
            Target::Class(c) => count[*c as usize] += 1.0,
            Target::Classes(v) => v.iter().for_each(|&c| count[c as usize] += 1.0),
            Target::Score(_) => return None,
        }
    }
    // A class without training examples keeps weight 1: nothing to rebalance.
    let w: Vec<f32> = match problem {
        ProblemType::SingleLabel => count.iter().map(|&c| if c > 0.0 { (n / (k as f64 * c)) as f32 } else { 1.0 }).collect(),
        ProblemType::MultiLabel => count.iter().map(|&c| if c > 0.0 { ((n - c) / c) as f32 } else { 1.0 }).collect(),
        ProblemType::Regression => return None,
    };
    Some(Tensor::from_slice(&w).to_device(device))
}

/// Runs the job; returns what `eval_results.json` holds.
pub fn run(args: &ClassifyArgs) -> Result<Map<String, Value>> {
    let out = &args.output_dir;
    let reads = [
        ("the --model directory", Some(Path::new(&args.model_name_or_path))),
        ("the --train-file", Some(args.train_file.as_path())),
        ("the --validation-file", args.validation_file.as_deref()),
        ("the --test-file", args.test_file.as_deref()),
    ];
    // The training arguments checked before the first write: a refused run leaves nothing behind.
    args.train.validate()?;
    crate::train::output_dir::prepare(out, args.resume.is_some(), args.train.overwrite_output_dir, &reads)?;
    let data = load_data(args)?;
    let problem = data.problem;
    let k = data.labels.as_ref().map_or(1, Vec::len);
    if problem == ProblemType::SingleLabel && k < 2 {
        return Err(Error::file(&args.train_file, format!("single-label classification needs at least 2 labels; found {:?}", data.labels.as_deref().unwrap_or(&[]))));
    }
    let model_dir = hub::resolve(&args.model_name_or_path)?;
    let cfg = BertConfig::from_file(&model_dir.join("config.json"))?;
    cfg.refuse_quantized(&model_dir.join("config.json"))?;
    cfg.check_seq_length(args.max_seq_length, &model_dir.join("config.json"))?;
    let encoder = TextEncoder::new(load_tokenizer(&model_dir)?, args.max_seq_length)?;
    let train = encode(&encoder, &data.train, problem, k)?;
    let validation = encode(&encoder, &data.validation, problem, k)?;
    tracing::info!(
        "{} problem, {k} label(s); {} training and {} validation examples",
        problem.hf_name(),
        train.features.len(),
        validation.features.len()
    );

    crate::io::write_json(&out.join("run_config.json"), &json!({
        "command": "classify", "args": args, "problem_type": problem, "labels": data.labels,
        "data": data.summary, "model_dir": model_dir, "model_config": cfg,
        "environment": crate::run_info::environment(args.device),
    }))?;

    tch::manual_seed(args.train.seed as i64);
    let (vs, net, report) = checkpoint::load_sequence_classifier(&model_dir, &cfg, k as i64, args.device)?;
    tracing::info!("loaded {}; newly initialised: {:?}; unused: {} tensors", model_dir.display(), report.newly_initialised, report.unused.len());
    let weights = match args.class_weights {
        ClassWeights::Balanced => class_weights(&data.train.targets, problem, k, args.device),
        ClassWeights::None => None,
    };
    let net = net.with_problem(problem, weights);
    let task = classify::data_name(&args.train_file);
    let model = Model { vs, net, cfg, source_dir: model_dir, encoder, labels: data.labels.clone(), task, pad_to_multiple_of: args.train.pad_to_multiple_of };

    let hash = |p: &Option<PathBuf>| p.as_ref().map(|p| crate::train::resume::file_hash(p)).transpose();
    let run = RunContext {
        output_dir: out,
        resume: args.resume.clone(),
        fingerprint: json!({
            "command": "classify", "model": args.model_name_or_path,
            "model_weights_sha256": crate::train::resume::file_hash(&checkpoint::weights_file(&model.source_dir)?)?,
            "train_file_sha256": crate::train::resume::file_hash(&args.train_file)?,
            "validation_file_sha256": hash(&args.validation_file)?, "validation_split": args.validation_split,
            "columns": args.columns, "problem_type": problem, "labels": data.labels, "class_weights": args.class_weights,
            "max_train_samples": args.max_train_samples, "max_seq_length": args.max_seq_length,
        })
        .as_object()
        .cloned()
        .expect("object literal"),
    };
    let threshold = args.threshold;
    let main = main_metric(problem);
    let score = move |logits: &Tensor, labels: &crate::data::batch::Labels| -> Result<(Scores, f64)> {
        let rows = Vec::<Vec<f32>>::try_from(logits)?;
        let r = metrics::evaluate(problem, &rows, labels, threshold);
        let objective = r.scores.iter().find(|(n, _)| n == main).map_or(f64::NAN, |(_, v)| *v);
        Ok((r.scores, objective))
    };
    let mut work = Work { model: &model, train: &train, evals: vec![("", &validation)], scorer: &score, eval_batch_size: args.per_device_eval_batch_size, best_dir: out.join("best_model") };
    let summary = trainer::train(&model.vs, train.features.len(), &args.train, &mut work, &run)?;
    if args.load_best_model_at_end && summary.best.is_some() {
        checkpoint::load_into(&model.vs, &out.join("best_model"))?;
    }

    let mut results = Map::new();
    results.insert("epoch".into(), json!(summary.epoch));
    let logits = seq_cls::final_evaluation(&model, &validation, &score, args.per_device_eval_batch_size, out, "", &mut results)?;
    let labels = validation.labels.as_ref().expect("validation is labelled");
    let detail = metrics::evaluate(problem, &logits, labels, threshold);
    write_detail(out, "eval", data.labels.as_deref(), &detail, &mut results)?;
    model.save(out)?;
    if let Some(test) = &args.test_file {
        predict_test(&model, args, test, out)?;
    }
    seq_cls::write_train_results(&model, &summary, &train, args.device, out, &format!("{} seed {}", model.task, args.train.seed))?;
    crate::io::write_json_sorted(&out.join("eval_results.json"), results)
}

/// Per-class metrics into `results`, `<prefix>_classification_report.txt` and, for single-label
/// problems, the confusion matrix as text and PNG.
fn write_detail(out: &Path, prefix: &str, names: Option<&[String]>, r: &Report, results: &mut Map<String, Value>) -> Result<()> {
    let Some(names) = names else { return Ok(()) };
    results.extend(metrics::per_class_json(names, &r.per_class, prefix));
    let stem = if prefix == "eval" { String::new() } else { format!("{prefix}_") };
    crate::io::write_atomic(&out.join(format!("{stem}classification_report.txt")), metrics::classification_report(names, &r.per_class, &r.scores).as_bytes())?;
    if let Some(cm) = &r.confusion {
        crate::io::write_atomic(&out.join(format!("{stem}confusion_matrix.txt")), metrics::confusion_text(names, cm).as_bytes())?;
        crate::eval::plots::confusion_matrix(&out.join(format!("{stem}confusion_matrix.png")), names, cm)?;
    }
    Ok(())
}

/// `predict_results.txt` for the test file (`index<TAB>prediction`: a label, labels joined by
/// commas for multi-label, or a value), and `test_results.json` when it has labels.
fn predict_test(model: &Model, args: &ClassifyArgs, path: &Path, out: &Path) -> Result<()> {
    let t = read_table(path, &args.files)?;
    let (raw, skipped) = classify::raw_examples(&t, &args.columns, false, args.files.skip_bad_rows)?;
    report_skipped(path, &skipped, "test", &mut Map::new());
    let names = model.labels.as_deref().unwrap_or(&[]);
    let has_labels = raw.iter().all(|e| e.label.is_some());
    let targets = if has_labels { classify::map_labels(&t, &raw, model.problem(), names, args.label_list.is_some())? } else { vec![None; raw.len()] };
    let split = Split { raw, targets };
    let enc = encode(&model.encoder, &split, model.problem(), names.len().max(1))?;
    let rows = Vec::<Vec<f32>>::try_from(model.logits(&enc.features, args.per_device_eval_batch_size)?)?;
    let mut s = String::from("index\tprediction\n");
    for (i, l) in rows.iter().enumerate() {
        let p = match model.problem() {
            ProblemType::Regression => format!("{:.3}", l[0]),
            ProblemType::SingleLabel => names[metrics::argmax(l)].clone(),
            ProblemType::MultiLabel => {
                let on: Vec<&str> = (0..l.len()).filter(|&j| metrics::sigmoid(l[j]) > args.threshold).map(|j| names[j].as_str()).collect();
                on.join(",")
            }
        };
        s += &format!("{i}\t{p}\n");
    }
    crate::io::write_atomic(&out.join("predict_results.txt"), s.as_bytes())?;
    if let Some(labels) = &enc.labels {
        let r = metrics::evaluate(model.problem(), &rows, labels, args.threshold);
        let mut results: Map<String, Value> = r.scores.iter().map(|(k, v)| (format!("test_{k}"), json!(v))).collect();
        results.insert("test_samples".into(), json!(rows.len()));
        write_detail(out, "test", model.labels.as_deref(), &r, &mut results)?;
        crate::io::write_json_sorted(&out.join("test_results.json"), results)?;
    }
    Ok(())
}
