//! `finetune bench`: times full training steps (forward, backward, clipping, AdamW — the training
//! loop's own `Stepper`) and prints one JSON line.
//!
//! Presets: `glue` runs the given model on real task batches taken in file order, so bench/
//! train_step.py (PyTorch + transformers) can time the very same batches; `bert-base-cls`,
//! `bert-base-qa` and `resnet50` use random weights and inputs at fixed shapes, the shapes
//! bench/gpu_bench.py times in PyTorch eager.
use super::flags::{DeviceCli, LayoutCli};
use crate::data::batch::{collate, Labels};
use crate::data::glue::{self, Task};
use crate::data::tokenize::{load_tokenizer, TextEncoder};
use crate::error::{Error, Result};
use crate::model::heads::{QuestionAnswering, SequenceClassifier};
use crate::model::vision::resnet::Depth;
use crate::model::vision::{Arch, ImageClassifier, NetOptions};
use crate::model::{checkpoint, config::BertConfig, hub};
use crate::train::graphs::{run_step, StepGraphs};
use crate::train::step::{LossFn, Stepper};
use crate::train::args::TrainArgs;
use clap::{Args, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    Glue,
    BertBaseCls,
    BertBaseQa,
    Resnet50,
}

#[derive(Args, Debug)]
pub struct BenchCli {
    #[arg(long, value_enum, default_value = "glue")]
    pub preset: Preset,
    /// GLUE task of the `glue` preset.
    #[arg(long, default_value = "rte")]
    pub task: String,
    /// Model of the `glue` preset.
    #[arg(long, default_value = hub::DEFAULT_MODEL)]
    pub model: String,
    /// GLUE data of the `glue` preset.
    #[arg(long, env = "GLUE_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Default: 32 (64 for resnet50).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Default: 128 (384 for bert-base-qa).
    #[arg(long, value_parser = super::flags::seq_length)]
    pub max_seq_length: Option<usize>,
    /// Timed steps (after the warm-up steps).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[command(flatten)]
    pub layout: LayoutCli,
    #[command(flatten)]
    pub device: DeviceCli,
}

/// Step `i`'s batch tensors (inputs rotate so no step re-reads a cached batch), and the loss of
/// such a batch.
struct Work<'a> {
    batch: Box<dyn Fn(usize) -> Vec<Tensor> + 'a>,
    loss: Box<LossFn<'a>>,
}

/// bert-base-uncased's shape (12 layers, 768 hidden, 12 heads, 3072 intermediate).
fn bert_base() -> BertConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "model_type": "bert",
    }))
    .expect("static config")
}

/// Random token batches (ids, type ids, mask, then `targets`) already on the device.
fn random_text(n: usize, batch: i64, seq: i64, vocab: i64, device: Device, targets: &[Tensor]) -> Vec<Vec<Tensor>> {
    (0..n)
        .map(|_| {
            let ids = Tensor::randint_low(1000, vocab, [batch, seq], (Kind::Int64, device));
            let (types, mask) = (ids.zeros_like(), ids.ones_like());
            [ids, types, mask].into_iter().chain(targets.iter().map(Tensor::shallow_clone)).collect()
        })
        .collect()
}

/// Step `i` takes batch `i mod n`.
fn rotate<'a>(batches: Vec<Vec<Tensor>>) -> Box<dyn Fn(usize) -> Vec<Tensor> + 'a> {
    Box::new(move |i| batches[i % batches.len()].iter().map(Tensor::shallow_clone).collect())
}

pub fn run(b: BenchCli) -> Result<()> {
    let mut args = TrainArgs::default();
    let device = b.device.apply(&mut args)?;
    crate::model::dropout::set_dropout_rng(args.dropout_rng);
    let channels_last = b.layout.channels_last(device);
    tch::manual_seed(0);
    let batch = b.batch_size.unwrap_or(if b.preset == Preset::Resnet50 { 64 } else { 32 }) as i64;
    let seq = b.max_seq_length.unwrap_or(if b.preset == Preset::BertBaseQa { 384 } else { 128 }) as i64;
    let mut vs = VarStore::new(Device::Cpu);
    let mut padded_tokens = 0.0;
    let mut work: Work = match b.preset {
        Preset::Glue => {
            let task: Task = b.task.parse()?;
            let data_dir = b.data_dir.clone().ok_or_else(|| Error::Invalid("the glue preset needs --data-dir (or GLUE_DIR)".into()))?;
            let dir = hub::resolve(&b.model)?;
            let cfg = BertConfig::from_file(&dir.join("config.json"))?;
            cfg.refuse_quantized(&dir.join("config.json"))?;
            let enc = TextEncoder::new(load_tokenizer(&dir)?, seq as usize)?;
            let n = (b.steps + b.warmup) * batch as usize;
            let mut examples = glue::read_labelled(task, &task.task_dir(&data_dir).join("train.tsv"))?;
            if examples.len() < n {
                return Err(Error::Invalid(format!("{} has {} training examples; {n} needed", task.name(), examples.len())));
            }
            examples.truncate(n);
            let features = enc.encode(examples.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())))?;
            let labels = Labels::from_targets(examples.iter().map(|e| e.target)).expect("labelled split");
            let (loaded, net, _) = checkpoint::load_sequence_classifier(&dir, &cfg, task.num_labels(), device)?;
            vs = loaded;
            let idx: Vec<usize> = (0..n).collect();
            let chunks: Vec<Vec<usize>> = idx.chunks(batch as usize).map(<[usize]>::to_vec).collect();
            padded_tokens = chunks.iter().skip(b.warmup).map(|c| c.iter().map(|&i| features[i].input_ids.len()).max().unwrap_or(0) * c.len()).sum::<usize>() as f64
                / b.steps as f64;
            let pad = args.pad_to_multiple_of;
            Work {
                batch: Box::new(move |i| {
                    let x = collate(&features, &chunks[i], enc.pad_id, pad, device);
                    vec![x.input_ids, x.token_type_ids, x.attention_mask, labels.gather(&chunks[i], device)]
                }),
                loss: Box::new(move |x| Ok(net.batch_loss(x))),
            }
        }
        Preset::BertBaseCls => {
            let net = SequenceClassifier::new(&vs.root(), &bert_base(), 2);
            vs.set_device(device);
            let labels = Tensor::randint(2, [batch], (Kind::Int64, device));
            let inputs = random_text(4, batch, seq, 30522, device, &[labels]);
            padded_tokens = (batch * seq) as f64;
            Work { batch: rotate(inputs), loss: Box::new(move |x| Ok(net.batch_loss(x))) }
        }
        Preset::BertBaseQa => {
            let net = QuestionAnswering::new(&vs.root(), &bert_base());
            vs.set_device(device);
            let (starts, ends) = (Tensor::randint(seq, [batch], (Kind::Int64, device)), Tensor::randint(seq, [batch], (Kind::Int64, device)));
            let inputs = random_text(4, batch, seq, 30522, device, &[starts, ends]);
            padded_tokens = (batch * seq) as f64;
            Work { batch: rotate(inputs), loss: Box::new(move |x| Ok(net.batch_loss(x))) }
        }
        Preset::Resnet50 => {
            let o = NetOptions { bn_momentum: 0.1, dropout: 0.0, drop_connect_rate: 0.0, channels_last };
            let net = ImageClassifier::new(&vs.root(), Arch::ResNet(Depth::R50), 1000, o);
            vs.set_device(device);
            net.lay_out_weights(&vs);
            let labels = Tensor::randint(1000, [batch], (Kind::Int64, device));
            let inputs = (0..4).map(|_| vec![Tensor::randn([batch, 3, 224, 224], (Kind::Float, device)), labels.shallow_clone()]).collect();
            Work { batch: rotate(inputs), loss: Box::new(move |x| Ok(net.batch_loss(x))) }
        }
    };
    let mut stepper = Stepper::new(&vs, &args)?;
    let mut graphs = args.cuda_graphs.then(|| StepGraphs::new(device, &stepper)).transpose()?;
    let sync = || {
        if let Device::Cuda(n) = device {
            tch::Cuda::synchronize(n as i64);
        }
    };
    let mut start = Instant::now();
    for i in 0..b.warmup + b.steps {
        if i == b.warmup {
            sync();
            start = Instant::now();
        }
        let micro = [(1.0, (work.batch)(i))];
        run_step(&mut graphs, &mut stepper, &micro, args.optim.learning_rate, i + 1, &mut *work.loss)?;
    }
    sync();
    let secs = start.elapsed().as_secs_f64();
    let eps = (b.steps as i64 * batch) as f64 / secs;
    println!(
        "{}",
        json!({
            "impl": "finetune (tch)", "preset": b.preset, "task": (b.preset == Preset::Glue).then_some(&b.task),
            "batch_size": batch, "max_seq_length": (b.preset != Preset::Resnet50).then_some(seq), "steps": b.steps,
            "padded_tokens_per_step": padded_tokens, "seconds": secs,
            "train_examples_per_second": eps, "device": format!("{device:?}"), "bf16": args.bf16, "fp16": args.fp16,
            "optim": args.optim_kind, "torch_num_threads": tch::get_num_threads(), "channels_last": (b.preset == Preset::Resnet50).then_some(channels_last),
            "cuda_graphs": graphs.as_ref().map(|g| json!({"captured": g.len(), "replays": g.replays})),
        })
    );
    Ok(())
}
