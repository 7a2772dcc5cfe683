//! Flag groups shared by several commands: data limits and device (`RunCli`), device, precision
//! and optimizer implementation (`DeviceCli`), optimisation (`TrainCli`), checkpoints and early
//! stopping (`CheckpointCli`), convolution layout (`LayoutCli`) and a fine-tuned model to load
//! (`ModelCli`). Names follow run_glue.py / TrainingArguments in kebab-case.
use crate::error::{Error, Result};
use crate::model::dropout::DropoutRng;
use crate::train::args::{ResumeFrom, SaveStrategy, TrainArgs};
use crate::train::optim::{OptimConfig, OptimizerKind};
use crate::train::schedule::SchedulerType;
use clap::Args;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use tch::Device;

/// A flag declared `required` but typed `Option` (so that a subcommand can stand in for it):
/// its value, or an error naming the command and the flag.
pub fn required<T>(value: Option<T>, command: &str, flag: &str) -> Result<T> {
    value.ok_or_else(|| Error::Invalid(format!("`finetune {command}` needs {flag}")))
}

/// A seed sweep, shared by the text training commands.
#[derive(Args, Debug, Clone)]
pub struct SeedsCli {
    /// Run once per seed into <output-dir>/seed-<n>/ and summarise (e.g. 42,43,44); finished
    /// seeds are skipped on a re-run.
    #[arg(long, value_delimiter = ',', conflicts_with = "num_seeds")]
    pub seeds: Option<Vec<u64>>,
    /// Shorthand for --seeds <seed>,<seed+1>,...
    #[arg(long)]
    pub num_seeds: Option<u64>,
}

impl SeedsCli {
    /// The seeds of a sweep counting from `base` (the `--seed`), or `None` for a single run.
    pub fn list(&self, base: u64) -> Option<Vec<u64>> {
        self.seeds.clone().or_else(|| self.num_seeds.map(|n| (base..base + n).collect()))
    }
}

/// clap parser: a whole number of at least 1 (a batch size, a count of clients or requests).
pub fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{e}; expected a whole number of at least 1")),
    }
}

/// clap parser: a `--max-seq-length`, at least 3 (`tokenize::check_min_seq_length`), checked
/// before a run writes anything; the model's own limit is checked once it is loaded.
pub fn seq_length(s: &str) -> std::result::Result<usize, String> {
    let n = s.parse::<usize>().map_err(|e| format!("{e}; expected a whole number of at least 3"))?;
    crate::data::tokenize::check_min_seq_length(n).map(|_| n)
}

/// clap parser: a probability strictly between 0 and 1 (a sigmoid threshold: at 0 or 1 and
/// beyond, every label or none would be predicted).
pub fn open_unit(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
        Ok(p) => Err(format!("{p} lies outside (0, 1): the sigmoid of every logit lies there, so every label or none would be predicted")),
        Err(e) => Err(format!("{e}; expected a number between 0 and 1")),
    }
}

/// One run, or one per seed into `<out>/seed-<n>/` (`run` gets the seed and directory; finished
/// seeds are skipped and the rest resume), and the JSON to print: the results, or the sweep's
/// summary.
pub fn run_seeds(seeds: Option<&[u64]>, out: &Path, mut run: impl FnMut(Option<(u64, PathBuf)>) -> Result<Map<String, Value>>) -> Result<Value> {
    if let Some(seed) = seeds.and_then(|s| s.iter().enumerate().find_map(|(i, seed)| s[..i].contains(seed).then_some(seed))) {
        return Err(Error::Invalid(format!("--seeds lists {seed} twice: one seed is one run, and a repeat would count that run twice in the mean and std")));
    }
    match seeds {
        None => Ok(Value::Object(run(None)?)),
        Some(seeds) => crate::train::sweep::sweep(out, seeds, |seed, dir| run(Some((seed, dir.into()))).map(|_| ())),
    }
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
    /// adamw_torch_fused (the default: transformers' Trainer's since 4.55 on torch >= 2.8, CPU and
    /// CUDA), adamw_torch (torch.optim.AdamW's single-tensor update) or sgd.
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
    /// Run the encoder on real tokens only (BERT-shaped families; QA stays padded): the same
    /// numbers up to rounding and the same dropout masks, less compute. `false` computes the
    /// padding as transformers does. Default: true, false with --cuda-graphs (fixed shapes).
    #[arg(long, action = clap::ArgAction::Set)]
    pub unpad: Option<bool>,
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
        train.unpad = self.unpad.unwrap_or(!self.cuda_graphs);
        crate::model::unpad::set_unpad(train.unpad);
        train.pad_to_multiple_of = self.pad_to_multiple_of.unwrap_or(if self.cuda_graphs {
            32
        } else if self.bf16 || self.fp16 {
            8
        } else {
            1
        });
        train.optim_kind = match &self.optim {
            Some(o) => o.parse()?,
            None => OptimizerKind::AdamwTorchFused,
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
    // A negative value (`-1e-3`, which clap's number test does not recognise) is taken as the
    // flag's value and refused as such, not read as another flag.
    #[arg(long, allow_hyphen_values = true)]
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
    #[command(flatten)]
    pub distributed: super::launch::DistCli,
}

impl TrainCli {
    /// The loop's arguments, with this command's defaults for what the user left out.
    pub fn into_args(self, learning_rate: f64, batch_size: usize, epochs: f64) -> Result<(TrainArgs, Option<ResumeFrom>)> {
        let c = self.checkpointing;
        let mut resume = c.resume.as_deref().map(str::parse::<ResumeFrom>).transpose()?;
        if crate::train::launch::restarted() {
            resume.get_or_insert(ResumeFrom::Auto);
        }
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
                overwrite_output_dir: c.overwrite_output_dir,
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
    /// Keep only the newest K checkpoints (of this run: others are never deleted).
    #[arg(long)]
    pub save_total_limit: Option<usize>,
    /// Replace the run already in --output-dir (its files are removed first). Without this or
    /// --resume, a directory holding a run is refused.
    #[arg(long)]
    pub overwrite_output_dir: bool,
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

#[derive(Args, Debug)]
pub struct ModelCli {
    /// Fine-tuned model directory (a `finetune glue` output directory, or its best_model/).
    #[arg(long)]
    pub model: PathBuf,
    /// Default: the value the model was trained with (from run_config.json), else 128.
    #[arg(long, value_parser = seq_length)]
    pub max_seq_length: Option<usize>,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Run the encoder on real tokens only (see the training commands' --unpad). Default: as the
    /// model's run evaluated (its run_config.json), so predictions reproduce that evaluation's
    /// logits exactly; padded for a model without one.
    #[arg(long, action = clap::ArgAction::Set)]
    pub unpad: Option<bool>,
}

/// Sets the process to run the encoder unpadded as `flag` says, else as `model`'s run evaluated
/// (its run_config.json) so that its evaluation is reproduced exactly, else padded.
pub fn set_unpad_for(model: &Path, flag: Option<bool>) {
    let trained = || crate::infer::trained_arg(model, "train").and_then(|t| t.get("unpad")?.as_bool());
    crate::model::unpad::set_unpad(flag.or_else(trained).unwrap_or(false));
}

impl ModelCli {
    /// The device, with the process set to run (or not) unpadded.
    pub fn device(&self) -> Result<Device> {
        set_unpad_for(&self.model, self.unpad);
        parse_device(&self.device)
    }

    pub fn load(&self) -> Result<crate::infer::Classifier> {
        crate::infer::Classifier::load(&self.model, self.max_seq_length, self.device()?)
    }
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

/// Installs the SIGINT/SIGTERM handlers that make a training command checkpoint and stop.
pub fn install_interrupts() -> Result<()> {
    crate::train::interrupt::install().map_err(|e| Error::Invalid(format!("cannot install signal handlers: {e}")))
}
