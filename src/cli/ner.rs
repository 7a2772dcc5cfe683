//! `finetune ner`: fine-tune token classification (run_ner.py's job and flag names) on CoNLL or
//! JSON lines files, or score the CoNLL-2003 lexicon baseline (`--baseline lexicon`);
//! `ner eval` scores a saved model on any file.
use super::classify::label_list;
use super::flags::{install_interrupts, parse_device, required, run_seeds, RunCli, SeedsCli, TrainCli};
use crate::data::conll::ReadOptions;
use crate::error::{Error, Result};
use crate::model::hub::DEFAULT_MODEL;
use crate::train::args::ResumeFrom;
use crate::train::distill::DistillArgs;
use crate::train::ner::NerArgs;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct NerCli {
    #[command(subcommand)]
    pub action: Option<NerAction>,
    #[command(flatten)]
    pub train: NerTrainCli,
}

/// How data files are read, shared by training and `ner eval`.
#[derive(Args, Debug, Clone)]
pub struct NerFileCli {
    /// The files' tag scheme, converted to IOB2 when read: iob1, iob2, bioes or auto.
    #[arg(long, default_value = "auto")]
    pub tag_scheme: String,
    /// JSON lines: the field holding each sentence's words.
    #[arg(long, default_value = "tokens")]
    pub text_column_name: String,
    /// JSON lines: the field holding their tags (strings, or ids into --label-list).
    #[arg(long, default_value = "ner_tags")]
    pub label_column_name: String,
    /// Truncate sentences to this many tokens (special tokens included). Default: the tokenizer's
    /// model_max_length, at most the model's positions.
    #[arg(long, value_parser = super::flags::seq_length)]
    pub max_seq_length: Option<usize>,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
}

impl NerFileCli {
    fn read_options(&self, label_list: Option<Vec<String>>) -> Result<ReadOptions> {
        Ok(ReadOptions { scheme: self.tag_scheme.parse()?, label_list, text_column_name: self.text_column_name.clone(), label_column_name: self.label_column_name.clone() })
    }
}

#[derive(Subcommand, Debug)]
pub enum NerAction {
    /// Score a fine-tuned token classifier on a file; writes predictions.txt (token gold predicted).
    Eval {
        /// A `finetune ner` output directory.
        #[arg(long)]
        model: PathBuf,
        /// CoNLL columns, or JSON lines (.json / .jsonl).
        #[arg(long)]
        file: PathBuf,
        /// Where predictions.txt and eval_results.json go (default: `eval-<file stem>` in the model
        /// directory); never a training run's directory.
        #[arg(long)]
        output_dir: Option<PathBuf>,
        #[command(flatten)]
        files: NerFileCli,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Real tokens only (default: as the model's run evaluated).
        #[arg(long, action = clap::ArgAction::Set)]
        unpad: Option<bool>,
    },
}

#[derive(Args, Debug)]
pub struct NerTrainCli {
    #[arg(long = "model", alias = "model-name-or-path", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// CoNLL columns (token first, tag last) or JSON lines (.json / .jsonl).
    #[arg(long, required = true)]
    pub train_file: Option<PathBuf>,
    #[arg(long, required = true)]
    pub validation_file: Option<PathBuf>,
    /// Also scored into test_results.json and test_predictions.txt.
    #[arg(long)]
    pub test_file: Option<PathBuf>,
    #[arg(long, required = true)]
    pub output_dir: Option<PathBuf>,
    /// The labels in id order: a file with one per line, or a comma-separated list. Default: the
    /// training tags (IOB2), sorted, as run_ner does.
    #[arg(long)]
    pub label_list: Option<String>,
    /// Label every sub-token of a word, not only the first.
    #[arg(long)]
    pub label_all_tokens: bool,
    /// `lexicon`: instead of training, score the CoNLL-2003 shared task's baseline (entities of the
    /// training data with one class, tagged where they recur).
    #[arg(long)]
    pub baseline: Option<String>,
    #[command(flatten)]
    pub files: NerFileCli,
    #[command(flatten)]
    pub seeds: SeedsCli,
    #[command(flatten)]
    pub run: RunCli,
    #[command(flatten)]
    pub training: TrainCli,
}

/// `finetune ner`, or its `eval` action.
pub fn run(n: NerCli) -> Result<()> {
    match n.action {
        Some(NerAction::Eval { model, file, output_dir, files, device, unpad }) => {
            super::flags::set_unpad_for(&model, unpad);
            let out = output_dir.unwrap_or_else(|| crate::train::output_dir::eval_dir(&model, &file));
            crate::train::output_dir::prepare_eval(&out, &[("the --file", Some(&file))])?;
            let results = crate::train::ner::evaluate_file(&model, &file, &files.read_options(None)?, files.max_seq_length, files.eval_batch_size, parse_device(&device)?, &out)?;
            let results = crate::io::write_json_sorted(&out.join("eval_results.json"), results)?;
            println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
            eprintln!("predictions written to {}", out.join("predictions.txt").display());
            Ok(())
        }
        None => train(n.train, None),
    }
}

/// Trains over the seeds, each run a student of `distill`'s teacher when given (`finetune distill
/// ner`).
pub fn train(t: NerTrainCli, distill: Option<DistillArgs>) -> Result<()> {
    install_interrupts()?;
    let Some(_rank) = super::launch::start(&t.training.distributed, &t.run)? else { return Ok(()) };
    let seeds = t.seeds.list(t.training.seed);
    // run_ner.py's defaults: Trainer's learning rate, batch size and epochs.
    let (mut train, resume) = t.training.into_args(5e-5, 8, 3.0)?;
    let device = t.run.device.apply(&mut train)?;
    let labels = t.label_list.as_deref().map(label_list).transpose()?;
    let args = NerArgs {
        model_name_or_path: t.model,
        train_file: required(t.train_file, "ner", "--train-file")?,
        validation_file: required(t.validation_file, "ner", "--validation-file")?,
        test_file: t.test_file,
        read: t.files.read_options(labels.clone())?,
        label_list: labels,
        label_all_tokens: t.label_all_tokens,
        max_seq_length: t.files.max_seq_length,
        per_device_eval_batch_size: t.files.eval_batch_size,
        output_dir: crate::train::ddp::output_dir(required(t.output_dir, "ner", "--output-dir")?),
        train,
        device,
        max_train_samples: t.run.max_train_samples,
        max_eval_samples: t.run.max_eval_samples,
        resume,
        distill,
    };
    let out = args.output_dir.clone();
    let results = match t.baseline.as_deref() {
        Some(_) if args.distill.is_some() => return Err(Error::Invalid("--baseline scores a baseline; there is nothing to distil".into())),
        Some("lexicon") => serde_json::Value::Object(crate::train::ner::run_baseline(&args)?),
        Some(other) => return Err(Error::Invalid(format!("--baseline `{other}`; expected lexicon"))),
        None => run_seeds(seeds.as_deref(), &out, |sweep| {
            let mut a = args.clone();
            if let Some((seed, dir)) = sweep {
                (a.train.seed, a.output_dir, a.resume) = (seed, dir, Some(a.resume.clone().unwrap_or(ResumeFrom::Auto)));
            }
            crate::train::ner::run(&a)
        })?,
    };
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
    eprintln!("outputs written to {}", out.display());
    Ok(())
}
