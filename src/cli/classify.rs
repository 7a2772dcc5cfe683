//! `finetune classify`: fine-tune on your own CSV / TSV / JSONL / JSON files (run_classification.py's
//! job and flag names): single-label, multi-label or regression, a validation file or a seeded
//! stratified split, a test file to predict.
use super::flags::{install_interrupts, run_seeds, RunCli, SeedsCli, TrainCli};
use crate::data::classify::Columns;
use crate::error::{Error, Result};
use crate::model::hub::DEFAULT_MODEL;
use crate::train::args::ResumeFrom;
use crate::train::classify::{ClassifyArgs, FileSpec};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct ClassifyCli {
    /// Model directory or Hugging Face hub id.
    #[arg(long = "model", alias = "model-name-or-path", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// Training data: .csv, .tsv, .jsonl, .json (array of records) or text lines with --line-regex.
    #[arg(long)]
    pub train_file: PathBuf,
    /// Validation data, same format. Or hold out part of the training file with --validation-split.
    #[arg(long)]
    pub validation_file: Option<PathBuf>,
    /// Hold out this fraction of the training file for validation (stratified by label, seeded
    /// with --seed).
    #[arg(long, conflicts_with = "validation_file")]
    pub validation_split: Option<f64>,
    /// Data to predict into predict_results.txt (scored into test_results.json if it has labels).
    #[arg(long)]
    pub test_file: Option<PathBuf>,
    /// csv, tsv, jsonl, json or lines. Default: from the file extension.
    #[arg(long)]
    pub format: Option<String>,
    /// utf-8 (a BOM is skipped) or latin-1.
    #[arg(long, default_value = "utf-8")]
    pub encoding: String,
    /// Names of the columns of CSV/TSV files without a header row (the first row is then data).
    #[arg(long, value_delimiter = ',')]
    pub column_names: Option<Vec<String>>,
    /// For text lines: a regular expression whose named groups are the columns, e.g.
    /// '^(?P<label>[^:]+):\S+ (?P<text>.+)$' for TREC's coarse labels.
    #[arg(long)]
    pub line_regex: Option<String>,
    /// The text column, or two for a text pair (e.g. sentence1,sentence2).
    #[arg(long, value_delimiter = ',', default_value = "text")]
    pub text_column_names: Vec<String>,
    #[arg(long, default_value = "label")]
    pub label_column_name: String,
    /// Split label fields on this string into several labels (multi-label), e.g. ','.
    #[arg(long)]
    pub label_delimiter: Option<String>,
    /// The labels in id order: a file with one per line, or a comma-separated list. Labels in the
    /// data may then also be written as ids into this list. Default: the training labels, sorted.
    #[arg(long)]
    pub label_list: Option<String>,
    /// single_label, multi_label or regression. Default: inferred (label lists or
    /// --label-delimiter: multi_label; decimal numbers: regression).
    #[arg(long)]
    pub problem_type: Option<String>,
    /// Multi-label: predict a label where its sigmoid exceeds this.
    #[arg(long, default_value_t = 0.5, value_parser = super::flags::open_unit, allow_hyphen_values = true)]
    pub threshold: f64,
    /// balanced (weights n / (k · count), multi-label: negatives / positives) or none.
    #[arg(long, default_value = "none")]
    pub class_weights: String,
    /// Drop malformed rows (counted and reported) instead of stopping at the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    #[arg(long)]
    pub output_dir: PathBuf,
    #[command(flatten)]
    pub seeds: SeedsCli,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
    #[arg(long, value_parser = super::flags::seq_length, default_value_t = 128)]
    pub max_seq_length: usize,
    /// Reload the best checkpoint (by --metric-for-best-model, else the problem's main metric)
    /// before the final evaluation.
    #[arg(long)]
    pub load_best_model_at_end: bool,
    #[command(flatten)]
    pub training: TrainCli,
    #[command(flatten)]
    pub run: RunCli,
}

/// `--label-list`: a file of names, one per line, or the names themselves separated by commas.
pub(super) fn label_list(arg: &str) -> Result<Vec<String>> {
    let path = std::path::Path::new(arg);
    let names: Vec<String> = if path.is_file() {
        let text = String::from_utf8(crate::io::read(path)?).map_err(|_| Error::file(path, "not UTF-8"))?;
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    } else {
        arg.split(',').map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
    };
    if let Some(dup) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)) {
        return Err(Error::Invalid(format!("--label-list names `{}` twice", dup.1)));
    }
    if names.is_empty() {
        return Err(Error::Invalid(format!("--label-list `{arg}` holds no labels")));
    }
    Ok(names)
}

impl ClassifyCli {
    pub fn into_args(self) -> Result<ClassifyArgs> {
        let (mut train, resume) = self.training.into_args(2e-5, 32, 3.0)?;
        let device = self.run.device.apply(&mut train)?;
        if !(1..=2).contains(&self.text_column_names.len()) {
            return Err(Error::Invalid(format!("--text-column-names takes one column or two (a pair), got {:?}", self.text_column_names)));
        }
        Ok(ClassifyArgs {
            model_name_or_path: self.model,
            train_file: self.train_file,
            validation_file: self.validation_file,
            validation_split: self.validation_split,
            test_file: self.test_file,
            files: FileSpec {
                format: self.format.as_deref().map(str::parse).transpose()?,
                encoding: self.encoding.parse()?,
                column_names: self.column_names,
                line_regex: self.line_regex,
                skip_bad_rows: self.skip_bad_rows,
            },
            columns: Columns { text: self.text_column_names, label: self.label_column_name, label_delimiter: self.label_delimiter },
            label_list: self.label_list.as_deref().map(label_list).transpose()?,
            problem_type: self.problem_type.as_deref().map(str::parse).transpose()?,
            threshold: self.threshold,
            class_weights: self.class_weights.parse()?,
            max_seq_length: self.max_seq_length,
            per_device_eval_batch_size: self.eval_batch_size,
            output_dir: self.output_dir,
            train,
            device,
            load_best_model_at_end: self.load_best_model_at_end,
            max_train_samples: self.run.max_train_samples,
            max_eval_samples: self.run.max_eval_samples,
            resume,
        })
    }
}

/// Runs the job (or a seed sweep) and prints its results.
pub fn run(mut c: ClassifyCli) -> Result<()> {
    install_interrupts()?;
    let Some(_rank) = super::launch::start(&c.training.distributed, &c.run)? else { return Ok(()) };
    c.output_dir = crate::train::ddp::output_dir(c.output_dir);
    let seeds = c.seeds.list(c.training.seed);
    let out = c.output_dir.clone();
    let args = c.into_args()?;
    let results = run_seeds(seeds.as_deref(), &out, |sweep| {
        let mut a = args.clone();
        if let Some((seed, dir)) = sweep {
            (a.train.seed, a.output_dir, a.resume) = (seed, dir, Some(a.resume.clone().unwrap_or(ResumeFrom::Auto)));
        }
        crate::train::classify::run(&a)
    })?;
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
    eprintln!("outputs written to {}", out.display());
    Ok(())
}
