//! `finetune bench`: times full training steps (forward, backward, clipping, AdamW) of the GLUE
//! classifier on real task batches taken in file order, so an external reference (bench/
//! train_step.py, PyTorch + transformers) can time the very same batches. Prints one JSON line.
use crate::data::batch::{collate, Labels};
use crate::data::glue::{self, Task};
use crate::data::tokenize::{load_tokenizer, TextEncoder};
use crate::error::{Error, Result};
use crate::model::{checkpoint, config::BertConfig, hub};
use crate::train::optim::{AdamW, AdamWConfig};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

#[derive(Args, Debug)]
pub struct BenchCli {
    #[arg(long, default_value = "rte")]
    pub task: String,
    #[arg(long, default_value = hub::DEFAULT_MODEL)]
    pub model: String,
    #[arg(long, env = "GLUE_DIR")]
    pub data_dir: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 128)]
    pub max_seq_length: usize,
    /// Timed steps (after the warm-up steps).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(b: BenchCli) -> Result<()> {
    let task: Task = b.task.parse()?;
    let device = super::parse_device(&b.device)?;
    let dir = hub::resolve(&b.model)?;
    let cfg = BertConfig::from_file(&dir.join("config.json"))?;
    let enc = TextEncoder::new(load_tokenizer(&dir)?, b.max_seq_length)?;
    let n = (b.steps + b.warmup) * b.batch_size;
    let mut examples = glue::read_labelled(task, &task.task_dir(&b.data_dir).join("train.tsv"))?;
    if examples.len() < n {
        return Err(Error::Invalid(format!("{} has {} training examples; {n} needed", task.name(), examples.len())));
    }
    examples.truncate(n);
    let features = enc.encode(examples.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())))?;
    let labels = Labels::from_targets(examples.iter().map(|e| e.target)).expect("labelled split");
    tch::manual_seed(0);
    let (vs, net, _) = checkpoint::load_sequence_classifier(&dir, &cfg, task.num_labels(), device)?;
    let mut opt = AdamW::new(&vs, AdamWConfig { learning_rate: 2e-5, weight_decay: 0.0, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8 })?;
    let idx: Vec<usize> = (0..n).collect();
    let mut start = Instant::now();
    let mut tokens = 0usize;
    for (i, chunk) in idx.chunks(b.batch_size).enumerate() {
        if i == b.warmup {
            if let Device::Cuda(_) = device {
                tch::Cuda::synchronize(0);
            }
            start = Instant::now();
            tokens = 0;
        }
        let batch = collate(&features, chunk, enc.pad_id, device);
        tokens += batch.input_ids.numel();
        opt.zero_grad();
        let logits = net.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, true);
        net.loss(&logits, &labels.gather(chunk, device)).backward();
        let _ = opt.clip_grad_norm(1.0);
        opt.step();
    }
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    let secs = start.elapsed().as_secs_f64();
    let eps = (b.steps * b.batch_size) as f64 / secs;
    println!(
        "{}",
        serde_json::json!({
            "impl": "finetune (tch)", "task": task.name(), "batch_size": b.batch_size, "steps": b.steps,
            "padded_tokens_per_step": tokens as f64 / b.steps as f64, "seconds": secs,
            "train_examples_per_second": eps, "torch_num_threads": tch::get_num_threads(),
        })
    );
    Ok(())
}
