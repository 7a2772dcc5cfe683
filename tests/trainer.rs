//! The training loop's control logic on a workload whose metric curve is scripted: best-model
//! selection, early stopping (patience and threshold), `metric_for_best_model` with a loss, and
//! the NaN policy. The "model" is one scalar weight, so each case runs in milliseconds.
use finetune::train::optim::{OptimConfig, OptimizerKind};
use finetune::train::schedule::SchedulerType;
use finetune::train::args::{SaveStrategy, TrainArgs};
use finetune::train::trainer::{train, Evaluation, RunContext, TrainSummary, Workload};
use finetune::{Error, Result};
use serde_json::{json, Map};
use tch::{nn, nn::VarStore, Tensor};

struct Scripted {
    w: Tensor,
    /// Accuracy reported by the k-th evaluation.
    curve: Vec<f64>,
    evals: usize,
    calls: usize,
    /// Loss calls (1-based) that return NaN.
    nan_at: Vec<usize>,
    best_seen: Vec<usize>,
}

impl Workload for Scripted {
    fn batch(&mut self, _indices: &[usize], _step: usize) -> Result<Vec<Tensor>> {
        Ok(Vec::new())
    }
    fn loss(&mut self, _batch: &[Tensor]) -> Result<Tensor> {
        self.calls += 1;
        let loss = (&self.w - 1.0).square().sum(tch::Kind::Float);
        Ok(if self.nan_at.contains(&self.calls) { loss * f64::NAN } else { loss })
    }
    fn evaluate(&mut self) -> Result<Evaluation> {
        let acc = self.curve[self.evals.min(self.curve.len() - 1)];
        self.evals += 1;
        let mut metrics = Map::new();
        metrics.insert("eval_accuracy".into(), json!(acc));
        metrics.insert("eval_loss".into(), json!(1.0 - acc));
        Ok(Evaluation { metrics, objective: acc })
    }
    fn on_best(&mut self, step: usize, _eval: &Evaluation) -> Result<()> {
        self.best_seen.push(step);
        Ok(())
    }
}

fn args() -> TrainArgs {
    TrainArgs {
        optim: OptimConfig { learning_rate: 0.1, weight_decay: 0.0, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, momentum: 0.0 },
        lr_scheduler_type: SchedulerType::Constant,
        per_device_train_batch_size: 1,
        num_train_epochs: 1.0,
        max_steps: Some(20),
        seed: 1,
        logging_steps: 1,
        eval_steps: Some(2),
        eval_each_epoch: false,
        save_strategy: SaveStrategy::No,
        ..TrainArgs::default()
    }
}

fn run(args: &TrainArgs, curve: &[f64], nan_at: &[usize]) -> (Result<TrainSummary>, Scripted) {
    let vs = VarStore::new(tch::Device::Cpu);
    let w = vs.root().var("w", &[1], nn::Init::Const(0.0));
    let mut work = Scripted { w, curve: curve.to_vec(), evals: 0, calls: 0, nan_at: nan_at.to_vec(), best_seen: vec![] };
    let dir = tempfile::tempdir().unwrap();
    let ctx = RunContext { output_dir: dir.path(), resume: None, fingerprint: Map::new() };
    let r = train(&vs, 10, args, &mut work, &ctx);
    (r, work)
}

#[test]
fn best_model_follows_the_metric_curve() {
    // Evaluations at steps 2, 4, ..., 20.
    let (r, work) = run(&args(), &[0.5, 0.7, 0.6, 0.7, 0.9, 0.8, 0.8, 0.85, 0.6, 0.7], &[]);
    let s = r.unwrap();
    assert_eq!(s.global_step, 20);
    assert!(!s.early_stopped);
    // Only strict improvements are new bests (the tie at step 8 is not).
    assert_eq!(work.best_seen, vec![2, 4, 10]);
    assert_eq!(s.best, Some((10, 0.9)));
}

#[test]
fn early_stopping_counts_evaluations_without_improvement() {
    let mut a = args();
    a.early_stopping_patience = Some(2);
    // Improves at 2, 4; then 6 (worse), 8 (tie) → two evaluations without improvement → stop at 8.
    let (r, work) = run(&a, &[0.5, 0.7, 0.6, 0.7, 0.9], &[]);
    let s = r.unwrap();
    assert!(s.early_stopped);
    assert_eq!(s.global_step, 8);
    assert_eq!(work.evals, 4);
    assert_eq!(s.best, Some((4, 0.7)));

    // With a threshold of 0.05, +0.02 steps do not reset the patience counter, although they are
    // still recorded as the best model.
    a.early_stopping_threshold = 0.05;
    let (r, work) = run(&a, &[0.5, 0.52, 0.54, 0.9], &[]);
    let s = r.unwrap();
    assert_eq!(s.global_step, 6);
    assert_eq!(work.best_seen, vec![2, 4, 6]);
}

#[test]
fn metric_for_best_model_can_be_a_loss() {
    let mut a = args();
    a.metric_for_best_model = Some("loss".into());
    // eval_loss = 1 - accuracy, smaller is better by default for a loss.
    let (r, work) = run(&a, &[0.5, 0.7, 0.6], &[]);
    r.unwrap();
    assert_eq!(work.best_seen, vec![2, 4]);
    a.greater_is_better = Some(true);
    let (r, work) = run(&a, &[0.5, 0.7, 0.6, 0.4], &[]);
    r.unwrap();
    assert_eq!(work.best_seen, vec![2, 8]);
    a.metric_for_best_model = Some("f1".into());
    let (r, _) = run(&a, &[0.5], &[]);
    let err = r.err().expect("no such metric").to_string();
    assert!(err.contains("eval_f1") && err.contains("eval_accuracy"), "{err}");
}

#[test]
fn non_finite_loss_stops_naming_the_step_or_is_skipped() {
    // The single-tensor update, which decides on the host (the fused one: the next test).
    let single = TrainArgs { optim_kind: OptimizerKind::AdamwTorch, ..args() };
    let (r, _) = run(&single, &[0.5], &[3]);
    match r {
        Err(Error::NonFinite { step, .. }) => assert_eq!(step, 3),
        other => panic!("expected NonFinite, got {:?}", other.map(|s| s.global_step)),
    }
    let mut a = single;
    a.skip_nonfinite = true;
    let (r, work) = run(&a, &[0.5], &[3, 7]);
    let s = r.unwrap();
    assert_eq!(s.skipped_nonfinite_steps, 2);
    assert_eq!(s.global_step, 20);
    // The skipped steps left the weight finite and training went on.
    assert!(work.w.double_value(&[0]).is_finite());
}

#[test]
fn fused_optimizer_skips_on_the_device_and_reports_the_step_at_the_next_log() {
    let mut a = args();
    a.optim_kind = OptimizerKind::AdamwTorchFused;
    a.logging_steps = 5;
    let (r, work) = run(&a, &[0.5], &[3]);
    match r {
        Err(Error::NonFinite { step, .. }) => assert_eq!(step, 3),
        other => panic!("expected NonFinite, got {:?}", other.map(|s| s.global_step)),
    }
    // The NaN step never reached the weight.
    assert!(work.w.double_value(&[0]).is_finite());
    a.skip_nonfinite = true;
    let (r, work) = run(&a, &[0.5], &[3, 7]);
    let s = r.unwrap();
    assert_eq!((s.skipped_nonfinite_steps, s.global_step), (2, 20));
    assert!(work.w.double_value(&[0]).is_finite());
    // fp16 overflows are expected: skipped by the loss scaler, counted, never an error.
    let mut a = args();
    a.fp16 = true;
    let (r, _) = run(&a, &[0.5], &[3]);
    assert_eq!(r.unwrap().skipped_nonfinite_steps, 1);
}

#[test]
fn early_stopping_without_evaluations_is_refused() {
    let mut a = args();
    a.early_stopping_patience = Some(1);
    a.eval_steps = None;
    let (r, _) = run(&a, &[0.5], &[]);
    assert!(r.err().unwrap().to_string().contains("early stopping needs evaluations"));
}

#[test]
fn group_by_length_sorts_within_megabatches_and_keeps_every_example() {
    use finetune::train::trainer::group_by_length;
    let lengths: Vec<usize> = (0..1000).map(|i| (i * 7919) % 128 + 1).collect();
    let mut order = finetune::data::batch::epoch_order(1000, 3, 0).unwrap();
    let shuffled = order.clone();
    group_by_length(&mut order, &lengths, 4);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    for mega in order.chunks(200) {
        assert!(mega.windows(2).all(|w| lengths[w[0]] >= lengths[w[1]]));
    }
    let padded = |o: &[usize]| o.chunks(4).map(|b| b.iter().map(|&i| lengths[i]).max().unwrap() * b.len()).sum::<usize>();
    assert!(padded(&order) * 10 < padded(&shuffled) * 7, "padding {} vs {}", padded(&order), padded(&shuffled));
}
