//! The training loop shared by every workload: seeded epoch order, gradient accumulation, AdamW,
//! clipping, LR schedule, periodic logging (JSONL + progress bar), evaluation with best-metric
//! tracking and early stopping, checkpoints with exact resume, and a clean stop on SIGINT/SIGTERM.
//! The workload supplies a micro-batch's device tensors given example indices, the loss of such a
//! batch (kept apart so `--cuda-graphs` can replay it on new batch contents), and an evaluation
//! returning metrics plus the value to maximise.
use crate::data::batch::epoch_order;
use crate::error::{Error, Result};
use crate::model::dropout::set_dropout_rng;
use crate::torch_ext::{self, maybe_autocast};
use crate::train::args::{ResumeFrom, TrainArgs};
use crate::train::graphs::{run_step, StepGraphs};
use crate::train::log::RunLog;
use crate::train::optim::AdamW;
use crate::train::resume::{self, TrainerState};
use crate::train::scaler::GradScaler;
use crate::train::schedule::Schedule;
use crate::train::step::{StepResult, Stepper};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn::VarStore, Kind, Tensor};

/// Where a run keeps its files, and what identifies it for a resume.
pub struct RunContext<'a> {
    pub output_dir: &'a Path,
    pub resume: Option<ResumeFrom>,
    /// Workload facts a checkpoint must agree with (model, task, data hashes, sequence length).
    pub fingerprint: Map<String, Value>,
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
    /// Examples trained on, across resumes.
    pub examples_seen: usize,
    pub best: Option<(usize, f64)>,
    pub early_stopped: bool,
    pub skipped_nonfinite_steps: usize,
    pub resumed_from: Option<PathBuf>,
}

impl TrainSummary {
    /// `train_results.json`'s common fields (HF Trainer names); jobs add their own.
    pub fn results(&self, train_samples: usize, device: tch::Device) -> Map<String, Value> {
        let v = json!({
            "epoch": self.epoch, "global_step": self.global_step, "train_loss": self.train_loss,
            "train_runtime": self.train_runtime_s, "train_samples_per_second": self.train_samples_per_second,
            "train_samples": train_samples, "best_step": self.best.map(|b| b.0),
            "best_objective": self.best.map(|b| b.1), "early_stopped": self.early_stopped,
            "skipped_nonfinite_steps": self.skipped_nonfinite_steps, "resumed_from": self.resumed_from,
            "device": format!("{device:?}"), "peak_rss_kib": crate::run_info::peak_rss_kib(),
        });
        v.as_object().cloned().expect("object literal")
    }
}

/// Hooks a workload gives the loop.
pub trait Workload {
    /// The device tensors (inputs, then targets) of the micro-batch at `indices`; `step` is the
    /// optimizer step it belongs to (a seed for per-example augmentation that survives a resume).
    fn batch(&mut self, indices: &[usize], step: usize) -> Result<Vec<Tensor>>;
    /// Mean loss over a micro-batch from `batch`, with dropout on. It must read nothing else that
    /// changes from step to step: a CUDA graph replays it on new contents of the same tensors.
    fn loss(&mut self, batch: &[Tensor]) -> Result<Tensor>;
    /// Evaluates the current weights.
    fn evaluate(&mut self) -> Result<Evaluation>;
    /// Called when an evaluation beats every earlier one.
    fn on_best(&mut self, step: usize, eval: &Evaluation) -> Result<()>;
    /// Called with the micro-batch that comes after the one about to run, so input preparation
    /// (image decoding) can overlap with the model's work.
    fn prefetch(&mut self, _indices: &[usize], _step: usize) {}
    /// Token count of each training example, for `group_by_length`.
    fn lengths(&self) -> Option<Vec<usize>> {
        None
    }
}

/// The number to maximise from an evaluation: `metric_for_best_model` (sign by
/// `greater_is_better`), else the workload's own objective.
fn objective(args: &TrainArgs, eval: &Evaluation) -> Result<f64> {
    let Some(name) = &args.metric_for_best_model else { return Ok(eval.objective) };
    let key = if name.starts_with("eval_") { name.clone() } else { format!("eval_{name}") };
    let v = eval.metrics.get(&key).and_then(Value::as_f64).ok_or_else(|| {
        let have: Vec<&str> = eval.metrics.keys().map(String::as_str).collect();
        Error::Invalid(format!("metric_for_best_model `{name}`: the evaluation reports no `{key}` (it has {})", have.join(", ")))
    })?;
    Ok(if args.greater_is_better.unwrap_or(!key.ends_with("loss")) { v } else { -v })
}

/// The generators a run draws from: the CPU one (data-loader draws, dropout on the CPU) and, on a
/// GPU, that device's (dropout there).
fn generators(device: tch::Device) -> Vec<(&'static str, tch::Device)> {
    let mut g = vec![("cpu", tch::Device::Cpu)];
    if device.is_cuda() {
        g.push(("cuda", device));
    }
    g
}

fn rng_states(device: tch::Device) -> Result<Vec<(&'static str, Tensor)>> {
    generators(device).into_iter().map(|(name, d)| Ok((name, torch_ext::rng_state(d)?))).collect()
}

fn restore_rng_states(path: &Path, device: tch::Device) -> Result<()> {
    let saved = Tensor::read_safetensors(path).map_err(|e| Error::file(path, format!("reading generator states: {e}")))?;
    for (name, d) in generators(device) {
        let state = saved.iter().find(|(n, _)| n == name).ok_or_else(|| Error::file(path, format!("no `{name}` generator state")))?;
        torch_ext::set_rng_state(d, &state.1).map_err(|e| Error::file(path, format!("`{name}` generator state: {e}")))?;
    }
    Ok(())
}

/// Loads a checkpoint into the model and optimizer; returns the loop state it holds.
fn restore(dir: &Path, vs: &VarStore, stepper: &mut Stepper, fingerprint: &Value) -> Result<TrainerState> {
    resume::check_fingerprint(dir, fingerprint)?;
    let report = crate::model::checkpoint::load_into(vs, dir)?;
    if !report.newly_initialised.is_empty() {
        return Err(Error::file(dir, format!("checkpoint lacks weights {:?}", report.newly_initialised)));
    }
    stepper.opt.load(&dir.join(resume::OPTIMIZER_FILE))?;
    let rng = dir.join(resume::rng_file(crate::train::ddp::rank()));
    if !rng.is_file() {
        return Err(Error::file(dir, format!("no generator state for rank {}: the checkpoint was written by a run with fewer processes", crate::train::ddp::rank())));
    }
    restore_rng_states(&rng, vs.device())?;
    let path = dir.join(resume::STATE_FILE);
    let st: TrainerState = serde_json::from_slice(&crate::io::read(&path)?).map_err(|e| Error::Json { path: path.clone(), source: e })?;
    if let Some(scaler) = &mut stepper.scaler {
        scaler.restore(st.grad_scaler.ok_or_else(|| Error::file(&path, "no grad_scaler state, but this run uses fp16"))?);
    }
    Ok(st)
}

/// Writes `checkpoint-<step>` (rank 0, with every rank's generator states; every rank calls this)
/// and returns its path on every rank.
fn save_checkpoint(out: &Path, vs: &VarStore, opt: &AdamW, st: &TrainerState, fingerprint: &Value, limit: Option<usize>) -> Result<PathBuf> {
    let states = crate::train::ddp::gather(&rng_states(vs.device())?)?;
    let saved = if crate::train::ddp::is_main() {
        let dir = resume::save(out, st.global_step, |tmp| {
            crate::model::checkpoint::save_safetensors(vs, &tmp.join(resume::MODEL_FILE))?;
            opt.save(&tmp.join(resume::OPTIMIZER_FILE))?;
            for (rank, s) in states.iter().enumerate() {
                Tensor::write_safetensors(s, tmp.join(resume::rng_file(rank)))?;
            }
            crate::io::write_json(&tmp.join(resume::STATE_FILE), st)?;
            crate::io::write_json(&tmp.join(resume::FINGERPRINT_FILE), fingerprint)
        })?;
        if let Some(k) = limit {
            resume::rotate(out, k, fingerprint)?;
        }
        Some(dir)
    } else {
        None
    };
    // Also the point after which every rank knows the checkpoint is complete.
    crate::train::ddp::broadcast_path(saved.as_deref())?.ok_or_else(|| Error::Invalid("rank 0 wrote no checkpoint".into()))
}

pub fn train(vs: &VarStore, n_examples: usize, args: &TrainArgs, work: &mut dyn Workload, run: &RunContext) -> Result<TrainSummary> {
    args.validate()?;
    if n_examples == 0 {
        return Err(Error::Invalid("no training examples".into()));
    }
    let out = run.output_dir;
    let mut stepper = Stepper::new(vs, args)?;
    let device = vs.device();
    let mut graphs = args.cuda_graphs.then(|| StepGraphs::new(device, &stepper)).transpose()?;
    set_dropout_rng(args.dropout_rng);
    crate::model::unpad::set_unpad(args.unpad);
    let amp = args.autocast_dtype();
    let total = args.total_steps(n_examples);
    let steps_per_epoch = args.steps_per_epoch(n_examples);
    let schedule = Schedule::new(args.lr_scheduler_type, total, args.warmup_steps, args.warmup_ratio)
        .with_step_decay(((args.lr_step_epochs * steps_per_epoch as f64).round() as usize).max(1), args.lr_gamma);
    let micro = args.per_device_train_batch_size;
    let accum = args.gradient_accumulation_steps;
    let fingerprint = args.fingerprint(n_examples, &run.fingerprint);

    let resumed_from = match (&run.resume, crate::train::ddp::is_main()) {
        (None, _) | (_, false) => None,
        (Some(ResumeFrom::Auto), true) => {
            let found = resume::latest_complete(out);
            if found.is_none() {
                tracing::info!("--resume auto: no complete checkpoint in {}; starting from scratch", out.display());
            }
            found
        }
        (Some(ResumeFrom::Dir(d)), true) => {
            resume::validate(d).map_err(|why| Error::file(d, format!("cannot resume: {why}")))?;
            Some(d.clone())
        }
    };
    // Every rank resumes from rank 0's choice.
    let resumed_from = match run.resume {
        Some(_) => crate::train::ddp::broadcast_path(resumed_from.as_deref())?,
        None => None,
    };
    let log_path = out.join("train_log.jsonl");
    let (mut st, mut log) = match &resumed_from {
        Some(dir) => {
            let st = restore(dir, vs, &mut stepper, &fingerprint)?;
            tracing::info!("resuming from {} at step {}", dir.display(), st.global_step);
            // Other ranks' logs go to their scratch directories, fresh.
            let log = if crate::train::ddp::is_main() { RunLog::resume(&log_path, st.log_offset)? } else { RunLog::create(&log_path)? };
            (st, log)
        }
        None => {
            // Trainer.__init__ reseeds after the model (and its new head) is built.
            tch::manual_seed(args.seed as i64);
            (TrainerState::default(), RunLog::create(&log_path)?)
        }
    };

    if let Some(g) = crate::train::ddp::group() {
        // DDP: rank 0's weights everywhere, then a reducer over the trainable parameters in one
        // order on every rank (by name).
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params: Vec<&Tensor> = named.iter().map(|(_, t)| t).collect();
        tch::no_grad(|| g.broadcast(&params, 0)).map_err(|e| crate::train::ddp::collective("receiving rank 0's weights", e))?;
        stepper.reducer = Some(crate::torch_dist::Reducer::new(g, &params, true)?);
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} train [{bar:30}] {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_position(st.global_step as u64);
    let start = Instant::now();
    let mut tally = Tally::new(&st, device);
    let mut interval_start = Instant::now();
    let mut session_examples = 0usize;
    let mut early_stopped = false;
    let mut epoch = st.global_step / steps_per_epoch;
    let lengths = match (args.group_by_length, work.lengths()) {
        (false, _) => None,
        (true, Some(l)) if l.len() == n_examples => Some(l),
        (true, _) => return Err(Error::Invalid("group_by_length: this workload does not report example lengths".into())),
    };

    'outer: while st.global_step < total {
        let done_in_epoch = st.global_step - epoch * steps_per_epoch;
        if done_in_epoch == 0 {
            // Each epoch's DataLoader iterator draws its base seed from the CPU generator before
            // the first batch; drawing it too keeps dropout on transformers' random stream.
            let _ = Tensor::empty([], (Kind::Int64, tch::Device::Cpu)).random_();
        }
        let mut order = epoch_order(n_examples, args.seed, epoch)?;
        if let Some(l) = &lengths {
            group_by_length(&mut order, l, micro);
        }
        let shards = crate::train::shard::rank_batches(&order, micro, crate::train::ddp::rank(), crate::train::ddp::world_size());
        let batches: Vec<&[usize]> = shards.iter().map(Vec::as_slice).collect();
        // Trailing micro-batches that cannot fill an accumulation group are dropped, as Trainer does.
        let groups: Vec<&[&[usize]]> = batches.chunks(accum).take(steps_per_epoch).skip(done_in_epoch).collect();
        for (gi, group) in groups.iter().enumerate() {
            let step = st.global_step;
            let n_group: usize = group.iter().map(|b| b.len()).sum();
            // Every rank's batches are as large (the tail wraps round): the step's global count.
            let n_global = n_group * crate::train::ddp::world_size();
            let mut micro = Vec::with_capacity(group.len());
            for (bi, b) in group.iter().enumerate() {
                let next = match group.get(bi + 1) {
                    Some(nb) => Some((*nb, step)),
                    None => groups.get(gi + 1).map(|g| (g[0], step + 1)),
                };
                if let Some((nb, ns)) = next {
                    work.prefetch(nb, ns);
                }
                micro.push((b.len() as f64 / n_group as f64, work.batch(b, step)?));
            }
            let lr = args.optim.learning_rate * schedule.factor(step);
            let mut loss = |x: &[Tensor]| work.loss(x);
            let StepResult { loss: step_loss, grad_norm, skipped } = run_step(&mut graphs, &mut stepper, &micro, lr, step + 1, &mut loss)?;
            tally.record(&step_loss, &skipped, step + 1);
            st.global_step += 1;
            let step = st.global_step;
            st.interval_examples += n_global;
            st.examples_seen += n_global;
            session_examples += n_global;
            bar.inc(1);
            st.epoch = round4(step as f64 / steps_per_epoch as f64);
            if step % args.logging_steps.max(1) == 0 || step == total {
                tally.drain(&mut st, args)?;
                let interval_sum = match crate::train::ddp::group() {
                    // Trainer logs the mean of the ranks' losses.
                    Some(g) => {
                        let t = tally.loss.to_device(tch::Device::Cpu).to_kind(Kind::Double).reshape([1]);
                        g.all_reduce_sum(&[&t]).map_err(|e| crate::train::ddp::collective("averaging the logged loss", e))?;
                        t.double_value(&[0]) / g.world_size as f64
                    }
                    None => tally.loss.double_value(&[]),
                };
                let mean = interval_sum / st.interval_steps.max(1) as f64;
                st.loss_sum += interval_sum;
                let secs = interval_start.elapsed().as_secs_f64();
                let eps = st.interval_examples as f64 / secs.max(1e-9);
                bar.set_message(format!("loss {mean:.4} lr {lr:.2e} {eps:.1} ex/s"));
                log.record(json!({
                    "step": step, "epoch": st.epoch, "loss": mean, "learning_rate": lr,
                    "grad_norm": grad_norm.double_value(&[]), "train_examples_per_second": eps,
                }))?;
                tally.reset_interval();
                st.interval_steps = 0;
                st.interval_examples = 0;
                interval_start = Instant::now();
            }
            let at_epoch_end = step % steps_per_epoch == 0 || step == total;
            if args.eval_steps.is_some_and(|n| step % n == 0) || (args.eval_each_epoch && at_epoch_end) {
                early_stopped = bar.suspend(|| maybe_autocast(device, amp, || evaluate(args, work, &mut st, &mut log)))?;
            }
            // A signal may reach one rank only: all stop at the same step, with one checkpoint.
            let interrupted = crate::train::ddp::any(crate::train::interrupt::requested())?;
            let mut last_saved = None;
            if args.should_save(step, at_epoch_end) || interrupted {
                tally.drain(&mut st, args)?;
                st.interval_loss = tally.loss.double_value(&[]);
                st.grad_scaler = stepper.scaler.as_ref().map(GradScaler::state);
                st.log_offset = log.offset()?;
                last_saved = Some(bar.suspend(|| save_checkpoint(out, vs, &stepper.opt, &st, &fingerprint, args.save_total_limit))?);
            }
            if let Some(checkpoint) = last_saved.take().filter(|_| interrupted) {
                bar.abandon();
                return Err(Error::Interrupted { step, checkpoint });
            }
            if early_stopped || step >= total {
                break 'outer;
            }
        }
        epoch += 1;
    }
    tally.drain(&mut st, args)?;
    bar.finish_and_clear();
    if let Some(g) = &graphs {
        tracing::info!("CUDA graphs: {} captured, {} steps replayed", g.len(), g.replays);
    }
    let runtime = start.elapsed().as_secs_f64();
    let steps_done = st.global_step - st.skipped_nonfinite_steps;
    Ok(TrainSummary {
        global_step: st.global_step,
        epoch: round4(st.global_step as f64 / steps_per_epoch as f64),
        train_loss: st.loss_sum / steps_done.max(1) as f64,
        train_runtime_s: runtime,
        train_samples_per_second: session_examples as f64 / runtime,
        examples_seen: st.examples_seen,
        best: st.best_step.zip(st.best_objective),
        early_stopped,
        skipped_nonfinite_steps: st.skipped_nonfinite_steps,
        resumed_from,
    })
}

/// HF's LengthGroupedSampler: within each run of 50 batches of the shuffled order, examples are
/// sorted longest first, so a batch holds similar lengths while the epoch stays shuffled.
pub fn group_by_length(order: &mut [usize], lengths: &[usize], batch_size: usize) {
    for mega in order.chunks_mut(50 * batch_size.max(1)) {
        mega.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    }
}

/// Per-step accounting kept on the device, read only at logging steps and checkpoints so that a
/// step needs no host sync (the single-tensor optimizer still checks finiteness on the host, which
/// is free on CPU).
struct Tally {
    /// Loss summed over the interval's steps that landed.
    loss: Tensor,
    /// Steps that landed in the interval.
    good: Tensor,
    /// Steps skipped since the last drain, and the first of them (-1 if none).
    skipped: Tensor,
    first_skipped: Tensor,
}

impl Tally {
    fn new(st: &TrainerState, device: tch::Device) -> Self {
        Tally {
            loss: Tensor::from(st.interval_loss as f32).to_device(device),
            good: Tensor::from(st.interval_steps as f32).to_device(device),
            skipped: Tensor::zeros([], (Kind::Float, device)),
            first_skipped: Tensor::full([], -1.0, (Kind::Float, device)),
        }
    }

    /// Adds optimizer step `step` (1-based) with its loss and skip flag (1.0 = skipped).
    fn record(&mut self, step_loss: &Tensor, bad: &Tensor, step: usize) {
        let landed = bad.eq(0.0);
        self.loss += step_loss.where_self(&landed, &step_loss.zeros_like());
        self.good += landed.to_kind(Kind::Float);
        let keep = self.first_skipped.ge(0.0).logical_or(&landed);
        self.first_skipped = self.first_skipped.where_self(&keep, &self.first_skipped.full_like(step as f64));
        self.skipped += bad;
    }

    /// Moves the counts into the loop state. Skipped steps are an error unless the run allows
    /// them (`skip_nonfinite`) or expects them (fp16 overflows back the loss scale off).
    fn drain(&mut self, st: &mut TrainerState, args: &TrainArgs) -> Result<()> {
        let n = self.skipped.double_value(&[]) as usize;
        if n > 0 {
            let first = self.first_skipped.double_value(&[]) as usize;
            if !args.skip_nonfinite && !args.fp16 {
                return Err(Error::NonFinite { step: first, value: f64::NAN });
            }
            st.skipped_nonfinite_steps += n;
            tracing::warn!("{n} step(s) from step {first} skipped: non-finite loss or gradient ({} so far)", st.skipped_nonfinite_steps);
            let _ = self.skipped.zero_();
            let _ = self.first_skipped.fill_(-1.0);
        }
        st.interval_steps = self.good.double_value(&[]) as usize;
        Ok(())
    }

    fn reset_interval(&mut self) {
        let _ = self.loss.zero_();
        let _ = self.good.zero_();
    }
}

/// Runs an evaluation, logs it, tracks the best model and the early-stopping patience (HF's
/// EarlyStoppingCallback rule: an improvement must beat the best by more than the threshold);
/// returns whether training should stop.
fn evaluate(args: &TrainArgs, work: &mut dyn Workload, st: &mut TrainerState, log: &mut RunLog) -> Result<bool> {
    let eval = work.evaluate()?;
    let objective = objective(args, &eval)?;
    let mut rec = eval.metrics.clone();
    rec.insert("step".into(), json!(st.global_step));
    rec.insert("epoch".into(), json!(st.epoch));
    let rec = Value::Object(rec);
    tracing::info!("step {}: {rec}", st.global_step);
    log.record(rec.clone())?;
    st.log_history.push(rec);
    let improved_enough = st.best_objective.is_none_or(|b| objective > b && objective - b > args.early_stopping_threshold);
    st.patience_counter = if improved_enough { 0 } else { st.patience_counter + 1 };
    if st.best_objective.is_none_or(|b| objective > b) {
        st.best_step = Some(st.global_step);
        st.best_objective = Some(objective);
        work.on_best(st.global_step, &eval)?;
    }
    let stop = args.early_stopping_patience.is_some_and(|p| st.patience_counter >= p);
    if stop {
        tracing::info!("early stopping at step {}: {} evaluations without improvement", st.global_step, st.patience_counter);
    }
    Ok(stop)
}

/// Epoch fractions are reported to 4 decimals, as Trainer does.
pub fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
