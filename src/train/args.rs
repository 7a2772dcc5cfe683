//! The arguments of the training loop (HF `TrainingArguments`' names): optimisation, schedule,
//! batching, evaluation and checkpoint cadence, precision. Kept apart from the loop so the step
//! (`train::step`), its CUDA-graph replay (`train::graphs`) and the loop (`train::trainer`) read
//! them in one direction.
use crate::error::{Error, Result};
use crate::model::dropout::DropoutRng;
use crate::train::optim::{OptimConfig, OptimizerKind};
use crate::train::schedule::SchedulerType;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::str::FromStr;
use tch::Kind;

/// When checkpoints are written (HF's `save_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SaveStrategy {
    Steps,
    Epoch,
    No,
}

impl FromStr for SaveStrategy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "steps" => Ok(SaveStrategy::Steps),
            "epoch" => Ok(SaveStrategy::Epoch),
            "no" => Ok(SaveStrategy::No),
            _ => Err(Error::Invalid(format!("save_strategy `{s}`; expected steps, epoch or no"))),
        }
    }
}

/// Where a run restarts from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum ResumeFrom {
    /// The newest complete checkpoint in the output directory, if any.
    Auto,
    Dir(PathBuf),
}

impl FromStr for ResumeFrom {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(if s == "auto" { ResumeFrom::Auto } else { ResumeFrom::Dir(PathBuf::from(s)) })
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainArgs {
    pub optim: OptimConfig,
    pub lr_scheduler_type: SchedulerType,
    /// `step` schedule: multiply the rate by `lr_gamma` every `lr_step_epochs` epochs.
    pub lr_step_epochs: f64,
    pub lr_gamma: f64,
    pub warmup_steps: usize,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub per_device_train_batch_size: usize,
    pub gradient_accumulation_steps: usize,
    pub num_train_epochs: f64,
    /// When set, overrides `num_train_epochs`.
    pub max_steps: Option<usize>,
    pub seed: u64,
    pub logging_steps: usize,
    /// Evaluate every N optimizer steps (in addition to `eval_each_epoch`).
    pub eval_steps: Option<usize>,
    pub eval_each_epoch: bool,
    pub save_strategy: SaveStrategy,
    pub save_steps: usize,
    /// Keep at most this many checkpoints (oldest deleted first).
    pub save_total_limit: Option<usize>,
    /// Replace a previous run in the output directory (its files are removed first).
    pub overwrite_output_dir: bool,
    /// Metric that picks the best model and drives early stopping (`eval_` prefix optional);
    /// default: the workload's main metric.
    pub metric_for_best_model: Option<String>,
    /// Default: true, except for metrics whose name ends in `loss`.
    pub greater_is_better: Option<bool>,
    /// Stop after this many evaluations without an improvement larger than the threshold.
    pub early_stopping_patience: Option<usize>,
    pub early_stopping_threshold: f64,
    /// Skip (and count) steps whose loss or gradient norm is NaN/inf instead of failing.
    pub skip_nonfinite: bool,
    pub optim_kind: OptimizerKind,
    /// Batch examples of similar length together (HF's `group_by_length`) to cut padding.
    pub group_by_length: bool,
    /// Round each batch's padded length up to a multiple of this (1 = no rounding).
    pub pad_to_multiple_of: usize,
    /// Forward passes under bf16 autocast (fp32 master weights and optimizer state).
    pub bf16: bool,
    /// Forward passes under fp16 autocast with dynamic loss scaling.
    pub fp16: bool,
    /// Replay each step shape's step from a CUDA graph (`train::graphs`).
    pub cuda_graphs: bool,
    /// Where dropout masks come from (`model::dropout`).
    pub dropout_rng: DropoutRng,
    /// Run the encoder on real tokens only (`model::unpad`).
    pub unpad: bool,
}

/// run_glue.py's defaults: lr 2e-5, batch 32, 3 epochs, linear decay without warmup, no weight
/// decay, clipping at 1.0, evaluation each epoch, a checkpoint every 500 steps.
impl Default for TrainArgs {
    fn default() -> Self {
        TrainArgs {
            optim: OptimConfig { learning_rate: 2e-5, weight_decay: 0.0, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, momentum: 0.0 },
            lr_scheduler_type: SchedulerType::Linear,
            lr_step_epochs: 1.0,
            lr_gamma: 0.1,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            max_grad_norm: 1.0,
            per_device_train_batch_size: 32,
            gradient_accumulation_steps: 1,
            num_train_epochs: 3.0,
            max_steps: None,
            seed: 42,
            logging_steps: 10,
            eval_steps: None,
            eval_each_epoch: true,
            save_strategy: SaveStrategy::Steps,
            save_steps: 500,
            save_total_limit: None,
            overwrite_output_dir: false,
            metric_for_best_model: None,
            greater_is_better: None,
            early_stopping_patience: None,
            early_stopping_threshold: 0.0,
            skip_nonfinite: false,
            optim_kind: OptimizerKind::AdamwTorchFused,
            group_by_length: false,
            pad_to_multiple_of: 1,
            bf16: false,
            fp16: false,
            cuda_graphs: false,
            dropout_rng: DropoutRng::Device,
            unpad: false,
        }
    }
}

impl TrainArgs {
    pub fn steps_per_epoch(&self, n_examples: usize) -> usize {
        // Under data parallelism each rank takes every world_size-th batch (train::shard).
        let batches = n_examples.div_ceil(self.per_device_train_batch_size).div_ceil(crate::train::ddp::world_size());
        (batches / self.gradient_accumulation_steps).max(1)
    }

    pub fn total_steps(&self, n_examples: usize) -> usize {
        self.max_steps.unwrap_or_else(|| (self.num_train_epochs * self.steps_per_epoch(n_examples) as f64).ceil() as usize)
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(m.into()));
        if self.per_device_train_batch_size == 0 || self.gradient_accumulation_steps == 0 {
            return bad("batch size and gradient_accumulation_steps must be positive");
        }
        if !(self.optim.learning_rate.is_finite() && self.optim.learning_rate > 0.0) {
            return bad("learning_rate must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio must lie in [0, 1]");
        }
        if self.max_steps.is_none() && !(self.num_train_epochs.is_finite() && self.num_train_epochs > 0.0) {
            return bad("num_train_epochs must be positive (or give max_steps)");
        }
        if self.save_strategy == SaveStrategy::Steps && self.save_steps == 0 {
            return bad("save_steps must be positive with save_strategy steps");
        }
        if self.early_stopping_patience.is_some() && self.eval_steps.is_none() && !self.eval_each_epoch {
            return bad("early stopping needs evaluations: give eval_steps or keep the per-epoch evaluation");
        }
        if self.bf16 && self.fp16 {
            return bad("give at most one of bf16 and fp16");
        }
        if self.cuda_graphs && self.dropout_rng == DropoutRng::Cpu {
            return bad("CPU-drawn dropout masks cannot be replayed from a CUDA graph: drop cuda_graphs or dropout_rng cpu");
        }
        if self.cuda_graphs && self.unpad {
            return bad("an unpadded batch's shape changes with its tokens, and a CUDA graph replays one shape: drop cuda_graphs or unpad");
        }
        Ok(())
    }

    /// The autocast dtype of forward passes, if any.
    pub fn autocast_dtype(&self) -> Option<Kind> {
        if self.bf16 {
            Some(Kind::BFloat16)
        } else if self.fp16 {
            Some(Kind::Half)
        } else {
            None
        }
    }

    /// What a checkpoint must agree with to be resumed by this run.
    pub fn fingerprint(&self, n_examples: usize, workload: &Map<String, Value>) -> Value {
        let mut m = workload.clone();
        let o = &self.optim;
        for (k, v) in [
            ("train_examples", json!(n_examples)),
            ("total_steps", json!(self.total_steps(n_examples))),
            ("learning_rate", json!(o.learning_rate)),
            ("weight_decay", json!(o.weight_decay)),
            ("adam_beta1", json!(o.adam_beta1)),
            ("adam_beta2", json!(o.adam_beta2)),
            ("adam_epsilon", json!(o.adam_epsilon)),
            ("lr_scheduler_type", json!(self.lr_scheduler_type)),
            ("lr_step_epochs", json!(self.lr_step_epochs)),
            ("lr_gamma", json!(self.lr_gamma)),
            ("momentum", json!(o.momentum)),
            ("warmup_steps", json!(self.warmup_steps)),
            ("warmup_ratio", json!(self.warmup_ratio)),
            ("max_grad_norm", json!(self.max_grad_norm)),
            ("per_device_train_batch_size", json!(self.per_device_train_batch_size)),
            ("gradient_accumulation_steps", json!(self.gradient_accumulation_steps)),
            ("seed", json!(self.seed)),
            ("optim", json!(self.optim_kind)),
            ("group_by_length", json!(self.group_by_length)),
            ("pad_to_multiple_of", json!(self.pad_to_multiple_of)),
            ("bf16", json!(self.bf16)),
            ("fp16", json!(self.fp16)),
        ] {
            m.insert(k.into(), v);
        }
        // A data-parallel run resumes at its own world size only (a single process's fingerprint
        // stays as it was).
        let world = crate::train::ddp::world_size();
        if world > 1 {
            m.insert("world_size".into(), json!(world));
        }
        Value::Object(m)
    }


    pub fn should_save(&self, step: usize, at_epoch_end: bool) -> bool {
        match self.save_strategy {
            SaveStrategy::Steps => step.is_multiple_of(self.save_steps),
            SaveStrategy::Epoch => at_epoch_end,
            SaveStrategy::No => false,
        }
    }
}
