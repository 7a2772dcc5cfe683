//! `finetune bench-infer`: several fine-tuned classifiers on the same GLUE dev inputs in one run —
//! batch-1 latency, throughput, size, parameters and the dev metric, as a table.
use crate::data::glue::Task;
use crate::error::Result;
use crate::infer::bench::{run as bench, table, InferBenchArgs};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct BenchInferCli {
    /// Fine-tuned model directories; ratios are against the first.
    #[arg(required = true)]
    pub models: Vec<PathBuf>,
    /// The GLUE task the models were fine-tuned on.
    #[arg(long)]
    pub task: String,
    /// GLUE root (holding RTE/, MRPC/, ...). Default: $GLUE_DIR.
    #[arg(long, env = "GLUE_DIR")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub max_eval_samples: Option<usize>,
    /// Dev examples timed one at a time (cycling through the dev set).
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Default: each model's training max_seq_length, else 128.
    #[arg(long, value_parser = super::flags::seq_length)]
    pub max_seq_length: Option<usize>,
    /// Run the encoders on real tokens only (the same for every model, so the comparison is fair).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub unpad: bool,
    /// Also write the rows as JSON here.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

pub fn run(b: BenchInferCli) -> Result<()> {
    let task: Task = b.task.parse()?;
    crate::model::unpad::set_unpad(b.unpad);
    let args = InferBenchArgs { task, data_dir: b.data_dir, max_eval_samples: b.max_eval_samples, latency_samples: b.latency_samples, batch_size: b.batch_size, max_seq_length: b.max_seq_length };
    let rows = bench(&b.models, &args)?;
    print!("{}", table(&rows));
    if let Some(path) = &b.output {
        crate::io::write_json(path, &serde_json::json!({"task": task.name(), "rows": rows, "torch_num_threads": tch::get_num_threads(), "int8_reduce_range": crate::model::linear::reduce_range(), "environment": crate::run_info::environment(tch::Device::Cpu)}))?;
    }
    Ok(())
}
