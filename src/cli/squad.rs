//! The SQuAD commands: `finetune squad` (fine-tune and evaluate; `squad predict` answers one
//! question), `squad-eval` (the official evaluation of a predictions file) and `squad-split`
//! (train/dev split by whole articles).
use super::flags::{install_interrupts, parse_device, required, RunCli, TrainCli};
use crate::error::{Error, Result};
use crate::model::hub::DEFAULT_MODEL;
use crate::train::distill::DistillArgs;
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct SquadCli {
    #[command(subcommand)]
    pub action: Option<SquadAction>,
    #[command(flatten)]
    pub train: SquadTrainCli,
}

#[derive(Subcommand, Debug)]
pub enum SquadAction {
    /// Answer a question about a context with a fine-tuned QA model.
    Predict {
        /// A `finetune squad` output directory.
        #[arg(long)]
        model: PathBuf,
        /// The context: a file path, or the text itself.
        #[arg(long)]
        context: String,
        #[arg(long)]
        question: String,
        #[arg(long, default_value_t = 384)]
        max_seq_length: usize,
        #[arg(long, default_value_t = 128)]
        doc_stride: usize,
        #[arg(long, default_value_t = 64)]
        max_query_length: usize,
        #[arg(long, default_value_t = 20)]
        n_best_size: usize,
        #[arg(long, default_value_t = 30)]
        max_answer_length: usize,
        /// Allow the empty answer (SQuAD 2.0 models).
        #[arg(long)]
        version_2_with_negative: bool,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
}

#[derive(Args, Debug)]
pub struct SquadTrainCli {
    #[arg(long = "model", alias = "model-name-or-path", default_value = DEFAULT_MODEL)]
    pub model: String,
    #[arg(long, required = true)]
    pub train_file: Option<PathBuf>,
    #[arg(long, required = true)]
    pub dev_file: Option<PathBuf>,
    #[arg(long, required = true)]
    pub output_dir: Option<PathBuf>,
    #[arg(long)]
    pub version_2_with_negative: bool,
    #[arg(long, value_parser = super::flags::seq_length, default_value_t = 384)]
    pub max_seq_length: usize,
    #[arg(long, default_value_t = 128)]
    pub doc_stride: usize,
    #[arg(long, default_value_t = 64)]
    pub max_query_length: usize,
    #[arg(long, default_value_t = 20)]
    pub n_best_size: usize,
    #[arg(long, default_value_t = 30)]
    pub max_answer_length: usize,
    #[arg(long, default_value_t = 0.0)]
    pub null_score_diff_threshold: f64,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
    #[command(flatten)]
    pub run: RunCli,
    #[command(flatten)]
    pub training: TrainCli,
}

#[derive(Args, Debug)]
pub struct SquadEvalCli {
    /// The dataset (dev JSON) the predictions answer.
    #[arg(long)]
    pub data: PathBuf,
    /// `{question id: answer text}`.
    #[arg(long)]
    pub predictions: PathBuf,
    /// v2.0: `{question id: no-answer score}`; enables the best-threshold sweep.
    #[arg(long)]
    pub na_prob: Option<PathBuf>,
    /// v2.0: predict "no answer" where the no-answer score exceeds this.
    #[arg(long, default_value_t = 1.0)]
    pub na_prob_thresh: f64,
    /// Where to write the result (default: eval_results.json beside the predictions).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SquadSplitCli {
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 0.1)]
    pub dev_fraction: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long)]
    pub output_dir: PathBuf,
}

/// `finetune squad`, or its `predict` action.
/// `--context`: a file's text, or the text itself. A value that reads as a path (no spaces, and
/// a folder separator or a file extension) but names no file is refused, so that a typo in a file
/// name is not answered from as if it were the context.
fn read_context(arg: &str) -> Result<String> {
    let path = std::path::Path::new(arg);
    if path.is_dir() {
        return Err(Error::file(path, "--context is a directory; expected a text file or the context's text"));
    }
    let text = if path.is_file() {
        String::from_utf8(crate::io::read(path)?).map_err(|_| Error::file(path, "not UTF-8 text"))?
    } else {
        let has_extension = path.extension().is_some_and(|e| (1..=5).contains(&e.len()) && e.to_string_lossy().chars().all(|c| c.is_ascii_alphanumeric()));
        if !arg.chars().any(char::is_whitespace) && (arg.contains('/') || has_extension) {
            return Err(Error::file(path, "--context: no such file (a context given as text has spaces; a file must exist)"));
        }
        arg.to_string()
    };
    if text.trim().is_empty() {
        return Err(Error::Invalid("--context is empty".into()));
    }
    Ok(text)
}

pub fn run(s: SquadCli) -> Result<()> {
    match s.action {
        Some(SquadAction::Predict { model, context, question, max_seq_length, doc_stride, max_query_length, n_best_size, max_answer_length, version_2_with_negative, device }) => {
            let context = read_context(&context)?;
            if question.trim().is_empty() {
                return Err(Error::Invalid("--question is empty".into()));
            }
            let qa = crate::infer::qa::load_trained(&model, parse_device(&device)?)?;
            let ex = crate::infer::qa::question("q".into(), context, question);
            let qa_cfg = crate::data::qa_features::QaConfig { max_seq_length, doc_stride, max_query_length };
            let post = crate::eval::qa_post::PostConfig { n_best_size, max_answer_length, version_2: version_2_with_negative, null_score_diff_threshold: 0.0 };
            let (p, _) = qa.predict(std::slice::from_ref(&ex), qa_cfg, post, 16)?;
            let best = crate::infer::qa::best_answer(&p, "q");
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({
                "answer": best["answer"], "score": best["score"], "probability": best["probability"], "nbest": p.nbest["q"],
            })).expect("JSON serialises"));
            Ok(())
        }
        None => train(s.train, None),
    }
}

/// Trains, as a student of `distill`'s teacher when given (`finetune distill squad`).
pub fn train(t: SquadTrainCli, distill: Option<DistillArgs>) -> Result<()> {
    install_interrupts()?;
    let Some(_rank) = super::launch::start(&t.training.distributed, &t.run)? else { return Ok(()) };
    let (mut train, resume) = t.training.into_args(3e-5, 12, 2.0)?;
    let device = t.run.device.apply(&mut train)?;
    let args = crate::train::squad::SquadArgs {
        model_name_or_path: t.model,
        train_file: required(t.train_file, "squad", "--train-file")?,
        dev_file: required(t.dev_file, "squad", "--dev-file")?,
        output_dir: crate::train::ddp::output_dir(required(t.output_dir, "squad", "--output-dir")?),
        version_2_with_negative: t.version_2_with_negative,
        max_seq_length: t.max_seq_length,
        doc_stride: t.doc_stride,
        max_query_length: t.max_query_length,
        n_best_size: t.n_best_size,
        max_answer_length: t.max_answer_length,
        null_score_diff_threshold: t.null_score_diff_threshold,
        per_device_eval_batch_size: t.eval_batch_size,
        train,
        device,
        max_train_samples: t.run.max_train_samples,
        max_eval_samples: t.run.max_eval_samples,
        resume,
        distill,
    };
    let results = crate::train::squad::run(&args)?;
    println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
    eprintln!("outputs written to {}", args.output_dir.display());
    Ok(())
}

/// Scores a predictions file with the official SQuAD evaluation and writes the result.
pub fn eval(e: SquadEvalCli) -> Result<()> {
    let data = crate::data::squad::read(&e.data)?;
    let read_map = |p: &PathBuf| -> Result<serde_json::Map<String, serde_json::Value>> {
        let v: serde_json::Value = serde_json::from_slice(&crate::io::read(p)?).map_err(|err| Error::Json { path: p.clone(), source: err })?;
        v.as_object().cloned().ok_or_else(|| Error::file(p, "expected a JSON object {question id: value}"))
    };
    let preds = read_map(&e.predictions)?;
    if let Some((id, v)) = preds.iter().find(|(_, v)| !v.is_string()) {
        return Err(Error::file(&e.predictions, format!("prediction for `{id}` must be a string, found {v}")));
    }
    let na = e.na_prob.as_ref().map(read_map).transpose()?;
    let questions: Vec<crate::eval::squad::Question> = data
        .examples
        .iter()
        .map(|x| crate::eval::squad::Question { id: x.id.clone(), answers: x.answers.iter().map(|a| a.text.clone()).collect() })
        .collect();
    let result = crate::eval::squad::evaluate(&questions, &preds, data.v2, na.as_ref(), e.na_prob_thresh);
    let out = e.out.clone().unwrap_or_else(|| e.predictions.with_file_name("eval_results.json"));
    crate::io::write_json(&out, &result)?;
    println!("{}", serde_json::to_string_pretty(&result).expect("JSON serialises"));
    eprintln!("written to {}", out.display());
    Ok(())
}

/// Writes train.json and dev.json.
pub fn split(s: SquadSplitCli) -> Result<()> {
    let (train, dev) = crate::train::squad::split(&s.input, s.dev_fraction, s.seed, &s.output_dir)?;
    println!("{train} training articles → {}, {dev} dev articles → {}", s.output_dir.join("train.json").display(), s.output_dir.join("dev.json").display());
    Ok(())
}
