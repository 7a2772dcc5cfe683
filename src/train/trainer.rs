//! The training loop shared by every workload: seeded epoch order, gradient accumulation, AdamW,
//! clipping, LR schedule, periodic logging (JSONL + progress bar) and evaluation with best-metric
//! tracking. The workload supplies two closures: the loss of a micro-batch given example indices,
//! and an evaluation returning metrics plus the value to maximise.
use crate::data::batch::epoch_order;
use crate::error::{Error, Result};
use crate::train::log::RunLog;
use crate::train::optim::{AdamW, AdamWConfig};
use crate::train::schedule::{Schedule, SchedulerType};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use std::time::Instant;
use tch::{nn::VarStore, Tensor};

#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainArgs {
    pub optim: AdamWConfig,
    pub lr_scheduler_type: SchedulerType,
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
}

/// Metrics of one evaluation and the number to maximise when picking the best model.
pub struct Evaluation {
    pub metrics: Map<String, Value>,
    pub objective: f64,
}

pub struct TrainSummary {
    pub global_step: usize,
    pub epoch: f64,
    pub train_loss: f64,
    pub train_runtime_s: f64,
    pub train_samples_per_second: f64,
    pub best: Option<(usize, f64)>,
}

/// Hooks a workload gives the loop.
pub trait Workload {
    /// Mean loss over the examples at `indices`, with dropout on.
    fn loss(&mut self, indices: &[usize]) -> Result<Tensor>;
    /// Evaluates the current weights.
    fn evaluate(&mut self) -> Result<Evaluation>;
    /// Called when an evaluation beats every earlier one.
    fn on_best(&mut self, step: usize, eval: &Evaluation) -> Result<()>;
}

impl TrainArgs {
    pub fn steps_per_epoch(&self, n_examples: usize) -> usize {
        let batches = n_examples.div_ceil(self.per_device_train_batch_size);
        (batches / self.gradient_accumulation_steps).max(1)
    }

    pub fn total_steps(&self, n_examples: usize) -> usize {
        self.max_steps.unwrap_or_else(|| (self.num_train_epochs * self.steps_per_epoch(n_examples) as f64).ceil() as usize)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Invalid(m.into()));
        if self.per_device_train_batch_size == 0 || self.gradient_accumulation_steps == 0 {
            return bad("batch size and gradient_accumulation_steps must be positive");
        }
        if !(self.optim.learning_rate > 0.0) || !self.optim.learning_rate.is_finite() {
            return bad("learning_rate must be a positive number");
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return bad("warmup_ratio must lie in [0, 1]");
        }
        if self.max_steps.is_none() && !(self.num_train_epochs > 0.0) {
            return bad("num_train_epochs must be positive (or give max_steps)");
        }
        Ok(())
    }
}

pub fn train(vs: &VarStore, n_examples: usize, args: &TrainArgs, work: &mut dyn Workload, log: &mut RunLog) -> Result<TrainSummary> {
    args.validate()?;
    if n_examples == 0 {
        return Err(Error::Invalid("no training examples".into()));
    }
    let mut opt = AdamW::new(vs, args.optim)?;
    let total = args.total_steps(n_examples);
    let steps_per_epoch = args.steps_per_epoch(n_examples);
    let schedule = Schedule::new(args.lr_scheduler_type, total, args.warmup_steps, args.warmup_ratio);
    let micro = args.per_device_train_batch_size;
    let accum = args.gradient_accumulation_steps;

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} train [{bar:30}] {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let start = Instant::now();
    let mut step = 0usize;
    let mut epoch = 0usize;
    let mut interval_loss = Tensor::zeros([], (tch::Kind::Float, vs.device()));
    let mut interval_steps = 0usize;
    let mut interval_examples = 0usize;
    let mut interval_start = Instant::now();
    let mut loss_sum = 0.0;
    let mut best: Option<(usize, f64)> = None;
    let mut examples_seen = 0usize;

    'outer: while step < total {
        let order = epoch_order(n_examples, args.seed, epoch);
        let batches: Vec<&[usize]> = order.chunks(micro).collect();
        // Trailing micro-batches that cannot fill an accumulation group are dropped, as Trainer does.
        for group in batches.chunks(accum).take(steps_per_epoch) {
            opt.zero_grad()?;
            let n_group: usize = group.iter().map(|b| b.len()).sum();
            for b in group {
                let loss = work.loss(b)?;
                // Weight each micro-batch by its share of examples so the step sees the group mean.
                let scaled = &loss * (b.len() as f64 / n_group as f64);
                scaled.backward();
                interval_loss += loss.detach() * (b.len() as f64 / n_group as f64);
            }
            let grad_norm = opt.clip_grad_norm(args.max_grad_norm);
            let lr = args.optim.learning_rate * schedule.factor(step);
            opt.set_lr(lr)?;
            opt.step()?;
            step += 1;
            interval_steps += 1;
            interval_examples += n_group;
            examples_seen += n_group;
            bar.inc(1);
            let epoch_f = epoch as f64 + (step - epoch * steps_per_epoch) as f64 / steps_per_epoch as f64;
            if step % args.logging_steps.max(1) == 0 || step == total {
                let mean = interval_loss.double_value(&[]) / interval_steps as f64;
                loss_sum += mean * interval_steps as f64;
                let secs = interval_start.elapsed().as_secs_f64();
                let eps = interval_examples as f64 / secs.max(1e-9);
                bar.set_message(format!("loss {mean:.4} lr {lr:.2e} {eps:.1} ex/s"));
                log.record(json!({
                    "step": step, "epoch": round4(epoch_f), "loss": mean, "learning_rate": lr,
                    "grad_norm": grad_norm.double_value(&[]), "train_examples_per_second": eps,
                }))?;
                interval_loss = interval_loss.zero_();
                interval_steps = 0;
                interval_examples = 0;
                interval_start = Instant::now();
            }
            let at_epoch_end = step % steps_per_epoch == 0 || step == total;
            if args.eval_steps.is_some_and(|n| step % n == 0) || (args.eval_each_epoch && at_epoch_end) {
                bar.suspend(|| -> Result<()> {
                    let eval = work.evaluate()?;
                    let mut rec = eval.metrics.clone();
                    rec.insert("step".into(), json!(step));
                    rec.insert("epoch".into(), json!(round4(epoch_f)));
                    let rec = Value::Object(rec);
                    tracing::info!("step {step}: {rec}");
                    log.record(rec)?;
                    if best.is_none_or(|(_, b)| eval.objective > b) {
                        best = Some((step, eval.objective));
                        work.on_best(step, &eval)?;
                    }
                    Ok(())
                })?;
            }
            if step >= total {
                break 'outer;
            }
        }
        epoch += 1;
    }
    bar.finish_and_clear();
    let runtime = start.elapsed().as_secs_f64();
    Ok(TrainSummary {
        global_step: step,
        epoch: round4(step as f64 / steps_per_epoch as f64),
        train_loss: loss_sum / step.max(1) as f64,
        train_runtime_s: runtime,
        train_samples_per_second: examples_seen as f64 / runtime,
        best,
    })
}

/// Epoch fractions are reported to 4 decimals, as Trainer does.
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
