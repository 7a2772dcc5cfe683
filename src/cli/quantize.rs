//! `finetune quantize`: a fine-tuned model directory in int8 (dynamic quantization of every Linear
//! layer), fp16 or bf16, for shipping; `predict`, `serve`, `bench-serve` and `bench-infer` load
//! the result.
use crate::error::Result;
use crate::model::quantize::{quantize, QuantDtype};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct QuantizeCli {
    /// A fine-tuned model directory (sequence or token classification, or QA).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub output_dir: PathBuf,
    #[arg(long, value_enum, default_value_t = QuantDtype::Int8)]
    pub dtype: QuantDtype,
}

pub fn run(q: QuantizeCli) -> Result<()> {
    let r = quantize(&q.model, &q.output_dir, q.dtype)?;
    let mb = |b: u64| b as f64 / 1e6;
    eprintln!("{}: weights file {:.1} MB → {:.1} MB ({:.2}× smaller)", q.output_dir.display(), mb(r.file_bytes.0), mb(r.file_bytes.1), r.file_bytes.0 as f64 / r.file_bytes.1 as f64);
    if r.int8_layers > 0 {
        let (a, b) = r.linear_weight_bytes;
        eprintln!(
            "{} Linear layers in int8: their weights {:.1} MB → {:.1} MB ({:.2}× smaller), largest rounding {:.2}% of a layer's largest weight",
            r.int8_layers,
            mb(a as u64),
            mb(b as u64),
            a as f64 / b as f64,
            100.0 * r.max_relative_rounding
        );
    }
    Ok(())
}
