//! `finetune predict`: a fine-tuned model over an input file, JSONL predictions out (answers for a
//! QA model, entities for a token classifier), with throughput on stderr.
use super::flags::ModelCli;
use crate::error::Result;
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PredictCli {
    #[command(flatten)]
    pub model: ModelCli,
    /// JSONL with `text` (+ `text_pair`), TSV with those columns, or a GLUE file of the model's task.
    #[arg(long)]
    pub input: PathBuf,
    /// JSONL predictions (default: standard output).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
}

/// Writes predictions to `--output` (atomically) or standard output.
pub fn run(p: PredictCli) -> Result<()> {
    if let Some(out) = &p.output {
        crate::io::refuse_overlap(out, "--output", &[("the --input file", Some(&p.input)), ("the --model directory", Some(&p.model.model))])?;
    }
    let start = std::time::Instant::now();
    let qa = crate::infer::qa::is_qa_model(&p.model.model);
    let ner = crate::infer::ner::is_token_classifier(&p.model.model);
    let (out, n) = if qa {
        answers(&p)?
    } else if ner {
        entities(&p)?
    } else {
        labels(&p)?
    };
    match &p.output {
        Some(path) => crate::io::write_atomic(path, out.as_bytes())?,
        None => print!("{out}"),
    }
    let secs = start.elapsed().as_secs_f64();
    let (what, per) = match (qa, ner) {
        (true, _) => ("answers", "questions"),
        (_, true) => ("predictions", "texts"),
        _ => ("predictions", "examples"),
    };
    eprintln!("{n} {what} in {secs:.2} s ({:.1} {per}/s)", n as f64 / secs.max(1e-9));
    Ok(())
}

/// Classifier or regressor: labels with probabilities, or scores.
fn labels(p: &PredictCli) -> Result<(String, usize)> {
    let model = p.model.load()?;
    let rows = crate::infer::input::read(&p.input, model.task.as_deref())?;
    let inputs: Vec<crate::infer::Input> = rows.iter().map(|r| r.input.clone()).collect();
    let features = model.encode(&inputs)?;
    let bar = indicatif::ProgressBar::new(features.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} predict [{bar:30}] {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let preds = model.predict_with_progress(&features, p.batch_size, Some(&bar))?;
    bar.finish_and_clear();
    Ok((crate::infer::predictions_jsonl(&rows, &preds), preds.len()))
}

/// QA model: JSONL `{"question", "context", "id"?}` in, one answer (text, character offsets,
/// score, probability) per line out.
fn answers(p: &PredictCli) -> Result<(String, usize)> {
    let dir: &Path = &p.model.model;
    let model = crate::infer::qa::load_trained(dir, p.model.device()?)?;
    let examples = crate::infer::qa::read_questions(&p.input)?;
    let (qa, post) = crate::infer::qa::trained_settings(dir, p.model.max_seq_length);
    let (preds, _) = model.predict(&examples, qa, post, p.batch_size)?;
    let out: String = examples.iter().map(|ex| crate::infer::qa::best_answer(&preds, &ex.id).to_string() + "\n").collect();
    Ok((out, examples.len()))
}

/// Token classifier: one line per text with its entities (type, character offsets, score, as
/// transformers' pipeline with `aggregation_strategy="simple"` groups them) and every token's logits.
fn entities(p: &PredictCli) -> Result<(String, usize)> {
    let (model, _) = crate::infer::ner::NerModel::load(&p.model.model, None, p.model.device()?)?;
    let rows = crate::infer::input::read(&p.input, None)?;
    if let Some(r) = rows.iter().find(|r| r.input.text_pair.is_some()) {
        return Err(crate::error::Error::file(&p.input, format!("input `{}` has a `text_pair`, but a token classifier tags one text at a time (as `serve` says too)", r.id)));
    }
    let encoder = model.text_encoder();
    let texts = rows
        .iter()
        .map(|r| encoder.encode(&r.input.text).map_err(|e| crate::error::Error::file(&p.input, format!("input `{}`: {e}", r.id))))
        .collect::<Result<Vec<_>>>()?;
    let preds = model.predict_encoded(&texts, p.batch_size)?;
    // Serialised directly (not through `json!`) so f32 logits keep their shortest form, as the
    // server writes them.
    #[derive(serde::Serialize)]
    struct Line<'a> {
        id: &'a str,
        text: &'a str,
        #[serde(flatten)]
        prediction: crate::infer::ner::TextPrediction,
    }
    let mut out = String::new();
    for (r, prediction) in rows.iter().zip(preds) {
        out.push_str(&serde_json::to_string(&Line { id: &r.id, text: &r.input.text, prediction }).expect("prediction serialises"));
        out.push('\n');
    }
    Ok((out, rows.len()))
}
