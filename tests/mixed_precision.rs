//! The precision and optimizer machinery behind `--bf16`, `--fp16` and `--optim`: fused AdamW
//! against the single-tensor update, device-side step skipping, foreach clipping, the autocast
//! guard and the fp16 loss scaler. Runs on the CPU (libtorch has CPU kernels for all of these);
//! the CUDA section repeats the device-specific checks on a GPU and tests CUDA-graph steps.
use finetune::torch_ext::{clip_grad_norm, Autocast};
use finetune::train::optim::{AdamW, OptimConfig, OptimizerKind};
use finetune::train::scaler::GradScaler;
use tch::{nn, nn::VarStore, Device, Kind, Tensor};

/// Deterministic values (no global RNG: tests run in parallel threads and share libtorch's generator).
fn wave(shape: &[i64], phase: f64, scale: f64, offset: f64) -> Tensor {
    let n: i64 = shape.iter().product();
    ((Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.7 + phase).sin() * scale + offset).view(shape)
}

/// The same three parameters on any device (built on the CPU, then moved).
fn store(device: Device) -> VarStore {
    let mut vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    for (path, name, shape, scale, offset) in [("layer", "weight", vec![5, 3], 1.0, 0.0), ("layer", "bias", vec![5], 1.0, 0.0), ("LayerNorm", "weight", vec![3], 0.1, 1.0)] {
        let mut v = (&root / path).var(name, &shape, nn::Init::Const(0.0));
        tch::no_grad(|| v.copy_(&wave(&shape, shape.len() as f64, scale, offset)));
    }
    vs.set_device(device);
    vs
}

const CFG: OptimConfig = OptimConfig { learning_rate: 1e-2, weight_decay: 0.1, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, momentum: 0.0 };

/// Sets every gradient to values drawn from `seed` (the same on every store).
fn random_grads(vs: &VarStore, seed: i64) {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut loss = Tensor::zeros([], (Kind::Float, vs.device()));
    for (name, v) in &vars {
        let g = wave(&v.size(), 1.3 * seed as f64 + name.len() as f64, 1.0, 0.0).to_device(vs.device());
        loss += (v * g).sum(Kind::Float);
    }
    loss.backward();
}

fn max_diff(a: &VarStore, b: &VarStore) -> f64 {
    let bv = b.variables();
    a.variables().iter().map(|(k, t)| (t.to_device(Device::Cpu) - bv[k].to_device(Device::Cpu)).abs().max().double_value(&[])).fold(0.0, f64::max)
}

#[test]
fn fused_adamw_matches_the_single_tensor_update_and_skips_on_the_device() {
    let (a, b) = (store(Device::Cpu), store(Device::Cpu));
    let mut single = AdamW::new(&a, CFG, OptimizerKind::AdamwTorch).unwrap();
    let mut fused = AdamW::new(&b, CFG, OptimizerKind::AdamwTorchFused).unwrap();
    let no_skip = Tensor::zeros([], (Kind::Float, Device::Cpu));
    for step in 0..6 {
        for (vs, opt) in [(&a, &mut single), (&b, &mut fused)] {
            opt.zero_grad();
            random_grads(vs, step);
        }
        single.step(None).unwrap();
        fused.step(Some(&no_skip)).unwrap();
    }
    let d = max_diff(&a, &b);
    assert!(d < 1e-6, "fused and single-tensor AdamW differ by {d}");
    assert!(max_diff(&a, &store(Device::Cpu)) > 1e-3, "the updates moved the weights");
    assert_eq!(fused.steps_taken(), 6);

    // A flagged step changes nothing, step counts included.
    let before: Vec<(String, Tensor)> = b.variables().into_iter().map(|(k, t)| (k, t.copy())).collect();
    fused.zero_grad();
    random_grads(&b, 99);
    fused.step(Some(&Tensor::ones([], (Kind::Float, Device::Cpu)))).unwrap();
    let after = b.variables();
    for (k, old) in &before {
        assert!(after[k].equal(old), "a skipped fused step changed {k}");
    }
    assert_eq!(fused.steps_taken(), 6);
}

#[test]
fn optimizer_state_round_trips_between_single_and_fused() {
    let vs = store(Device::Cpu);
    let mut fused = AdamW::new(&vs, CFG, OptimizerKind::AdamwTorchFused).unwrap();
    for step in 0..3 {
        fused.zero_grad();
        random_grads(&vs, step);
        fused.step(None).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("optimizer.safetensors");
    fused.save(&path).unwrap();
    let mut other = AdamW::new(&vs, CFG, OptimizerKind::AdamwTorchFused).unwrap();
    other.load(&path).unwrap();
    assert_eq!(other.steps_taken(), 3);
}

#[test]
fn foreach_clipping_scales_to_the_max_norm() {
    let g1 = Tensor::from_slice(&[3.0f32, 0.0]);
    let g2 = Tensor::from_slice(&[4.0f32]);
    let total = clip_grad_norm(&[&g1, &g2], 1.0).unwrap();
    assert!((total.double_value(&[]) - 5.0).abs() < 1e-6);
    let after = (g1.square().sum(Kind::Float) + g2.square().sum(Kind::Float)).sqrt().double_value(&[]);
    assert!((after - 1.0).abs() < 1e-5, "clipped norm {after}");
    assert!((g1.double_value(&[0]) - 0.6).abs() < 1e-5);
    // Below the limit nothing changes.
    let g3 = Tensor::from_slice(&[0.1f32]);
    let _ = clip_grad_norm(&[&g3], 1.0).unwrap();
    assert_eq!(g3.double_value(&[0]) as f32, 0.1f32);
}

#[test]
fn autocast_guard_casts_matmuls_and_restores_on_drop() {
    let a = Tensor::randn([4, 4], (Kind::Float, Device::Cpu));
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    {
        let _outer = Autocast::new(Device::Cpu, Kind::BFloat16).unwrap();
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
        {
            let _inner = Autocast::new(Device::Cpu, Kind::Half).unwrap();
            assert_eq!(a.matmul(&a).kind(), Kind::Half);
        }
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16, "inner guard restored the outer dtype");
    }
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    assert!(Autocast::new(Device::Cpu, Kind::Double).is_err());
}

#[test]
fn grad_scaler_unscales_and_backs_off_on_overflow() {
    let mut scaler = GradScaler::new(Device::Cpu);
    assert_eq!(scaler.state().0, 65536.0);
    let g = Tensor::from_slice(&[65536.0f32, -131072.0]);
    let found = scaler.unscale(std::slice::from_ref(&g)).unwrap().double_value(&[]);
    assert_eq!(found, 0.0);
    assert_eq!(Vec::<f32>::try_from(&g).unwrap(), vec![1.0, -2.0]);
    scaler.update();
    assert_eq!(scaler.state().0, 65536.0, "one good step does not grow the scale");

    let bad = Tensor::from_slice(&[1.0f32, f32::INFINITY]);
    assert_eq!(scaler.unscale(std::slice::from_ref(&bad)).unwrap().double_value(&[]), 1.0);
    scaler.update();
    assert_eq!(scaler.state().0, 32768.0);
    let (scale, growth) = scaler.state();
    let mut other = GradScaler::new(Device::Cpu);
    other.restore((scale, growth));
    assert_eq!(other.state(), (32768.0, 0));
}

// ---- CUDA: the same machinery on a GPU; each test says why it did nothing where none is visible.

fn cuda() -> Option<Device> {
    if tch::Cuda::is_available() {
        Some(Device::Cuda(0))
    } else {
        eprintln!("skipped: no CUDA device visible (libtorch reports {} devices)", tch::Cuda::device_count());
        None
    }
}

#[test]
fn cuda_fused_adamw_matches_the_cpu_update() {
    let Some(gpu) = cuda() else { return };
    let (a, b) = (store(Device::Cpu), store(gpu));
    let mut cpu = AdamW::new(&a, CFG, OptimizerKind::AdamwTorch).unwrap();
    let mut fused = AdamW::new(&b, CFG, OptimizerKind::AdamwTorchFused).unwrap();
    let no_skip = Tensor::zeros([], (Kind::Float, gpu));
    for step in 0..6 {
        cpu.zero_grad();
        random_grads(&a, step);
        fused.zero_grad();
        random_grads(&b, step);
        cpu.step(None).unwrap();
        fused.step(Some(&no_skip)).unwrap();
    }
    let d = max_diff(&a, &b);
    assert!(d < 1e-5, "CUDA fused AdamW and CPU AdamW differ by {d}");
    assert_eq!(fused.steps_taken(), 6);
}

#[test]
fn cuda_autocast_and_clipping() {
    let Some(gpu) = cuda() else { return };
    let a = Tensor::randn([8, 8], (Kind::Float, gpu));
    {
        let _g = Autocast::new(gpu, Kind::BFloat16).unwrap();
        assert_eq!(a.matmul(&a).kind(), Kind::BFloat16);
    }
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    let g = Tensor::from_slice(&[3.0f32, 4.0]).to_device(gpu);
    let total = clip_grad_norm(&[&g], 1.0).unwrap();
    assert_eq!(total.device(), gpu);
    assert!((total.double_value(&[]) - 5.0).abs() < 1e-5);
    let mut scaler = GradScaler::new(gpu);
    let bad = Tensor::from_slice(&[1.0f32, f32::NAN]).to_device(gpu);
    assert_eq!(scaler.unscale(std::slice::from_ref(&bad)).unwrap().double_value(&[]), 1.0);
    scaler.update();
    assert_eq!(scaler.state().0, 32768.0);
}

#[test]
fn cuda_classifier_matches_the_cpu_forward_and_trains_in_mixed_precision() {
    let Some(gpu) = cuda() else { return };
    use finetune::train::step::Stepper;
    use finetune::train::args::TrainArgs;
    let (mut vs, net) = tiny_classifier(0.1, 3);
    let ids = Tensor::randint_low(1, 300, [4, 16], (Kind::Int64, Device::Cpu));
    let mask = Tensor::ones([4, 16], (Kind::Int64, Device::Cpu));
    let tt = ids.zeros_like();
    let on_cpu = net.forward(&ids, &tt, &mask, false);
    vs.set_device(gpu);
    let on_gpu = net.forward(&ids.to_device(gpu), &tt.to_device(gpu), &mask.to_device(gpu), false).to_device(Device::Cpu);
    let d = (&on_cpu - &on_gpu).abs().max().double_value(&[]);
    assert!(d < 1e-4, "CUDA and CPU logits differ by {d}");

    let labels = Tensor::from_slice(&[0i64, 1, 0, 1]).to_device(gpu);
    for (bf16, fp16) in [(true, false), (false, true)] {
        let args = TrainArgs { bf16, fp16, optim_kind: OptimizerKind::AdamwTorchFused, ..TrainArgs::default() };
        let mut stepper = Stepper::new(&vs, &args).unwrap();
        let (mut losses, mut skipped) = (vec![], 0.0);
        stepper.set_lr(1e-3);
        let batch = [(1.0, vec![ids.to_device(gpu), tt.to_device(gpu), mask.to_device(gpu), labels.shallow_clone()])];
        for step in 1..=20 {
            let r = stepper.step(&batch, step, &mut |x: &[Tensor]| Ok(net.batch_loss(x))).unwrap();
            losses.push(r.loss.double_value(&[]));
            skipped += r.skipped.double_value(&[]);
        }
        // bf16 never overflows; fp16 may back its loss scale off a few times at the start.
        assert!(skipped <= if fp16 { 3.0 } else { 0.0 }, "{skipped} steps skipped (bf16 {bf16}, fp16 {fp16})");
        assert!(losses[19] < losses[0], "loss did not fall (bf16 {bf16}, fp16 {fp16}): {losses:?}");
    }
}

#[test]
fn sgd_with_momentum_follows_torch_optim_sgd() {
    let vs = VarStore::new(Device::Cpu);
    let w = (&vs.root() / "layer").var("weight", &[1], nn::Init::Const(1.0));
    let b = (&vs.root() / "layer").var("bias", &[1], nn::Init::Const(1.0));
    let cfg = OptimConfig { learning_rate: 0.1, weight_decay: 0.1, momentum: 0.9, ..CFG };
    let mut sgd = AdamW::new(&vs, cfg, OptimizerKind::Sgd).unwrap();
    let (mut pw, mut pb, mut bw, mut bb) = (1.0f64, 1.0f64, 0.0f64, 0.0f64);
    for step in 0..3 {
        sgd.zero_grad();
        ((&w + &b) * 0.5).sum(Kind::Float).backward();
        sgd.step(None).unwrap();
        // torch.optim.SGD: d = g + wd·p (the bias takes no decay here); buf = d, then μ·buf + d.
        let (dw, db) = (0.5 + 0.1 * pw, 0.5);
        (bw, bb) = if step == 0 { (dw, db) } else { (0.9 * bw + dw, 0.9 * bb + db) };
        pw -= 0.1 * bw;
        pb -= 0.1 * bb;
    }
    assert!((w.double_value(&[0]) - pw).abs() < 1e-6, "{} vs {pw}", w.double_value(&[0]));
    assert!((b.double_value(&[0]) - pb).abs() < 1e-6, "{} vs {pb}", b.double_value(&[0]));
}

/// A tiny BERT classifier on the CPU, weights drawn from `seed`.
fn tiny_classifier(dropout: f64, seed: i64) -> (VarStore, finetune::model::heads::SequenceClassifier) {
    let cfg: finetune::model::config::BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 300, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
        "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
    }))
    .unwrap();
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let net = finetune::model::heads::SequenceClassifier::new(&vs.root(), &cfg, 2);
    (vs, net)
}

#[test]
fn cuda_graphs_refuse_the_cpu_and_host_side_optimizers() {
    use finetune::train::{args::TrainArgs, graphs::StepGraphs, step::Stepper};
    let (vs, _net) = tiny_classifier(0.0, 1);
    let stepper = Stepper::new(&vs, &TrainArgs { optim_kind: OptimizerKind::AdamwTorchFused, ..TrainArgs::default() }).unwrap();
    let err = StepGraphs::new(Device::Cpu, &stepper).err().expect("no graphs on the CPU").to_string();
    assert!(err.contains("needs a CUDA device"), "{err}");
    let Some(gpu) = cuda() else { return };
    let (mut vs, _net) = tiny_classifier(0.0, 1);
    vs.set_device(gpu);
    for optim_kind in [OptimizerKind::AdamwTorch, OptimizerKind::Sgd] {
        let stepper = Stepper::new(&vs, &TrainArgs { optim_kind, ..TrainArgs::default() }).unwrap();
        let err = StepGraphs::new(gpu, &stepper).err().expect("refused").to_string();
        assert!(err.contains("adamw_torch_fused"), "{err}");
    }
    // The fp16 loss scaler keeps its state on the device: capturable.
    let stepper = Stepper::new(&vs, &TrainArgs { fp16: true, optim_kind: OptimizerKind::AdamwTorchFused, ..TrainArgs::default() }).unwrap();
    assert!(StepGraphs::new(gpu, &stepper).is_ok());
}

#[test]
fn cuda_graph_steps_match_eager_steps_and_follow_the_schedule() {
    let Some(gpu) = cuda() else { return };
    use finetune::train::{args::TrainArgs, graphs::StepGraphs, step::Stepper};
    let batch = |b: i64, s: i64, k: i64| {
        let ids = ((Tensor::arange(b * s, (Kind::Int64, Device::Cpu)) * (7 + k)).remainder(290) + 5).view([b, s]);
        vec![ids.to_device(gpu), ids.zeros_like().to_device(gpu), ids.ones_like().to_device(gpu), Tensor::arange(b, (Kind::Int64, Device::Cpu)).remainder(2).to_device(gpu)]
    };
    // Shapes A A A B B B A C: A and B warm up, then are captured and replayed (5 replays, the
    // captures included); C only warms up.
    let plan = [(4, 16), (4, 16), (4, 16), (4, 24), (4, 24), (4, 24), (4, 16), (3, 16)];
    // Both runs start from one snapshot (the global generator is shared with parallel tests).
    let (start, _) = tiny_classifier(0.0, 5);
    let run = |graphed: bool, fp16: bool| {
        let args = TrainArgs { fp16, optim_kind: OptimizerKind::AdamwTorchFused, ..TrainArgs::default() };
        let (mut vs, net) = tiny_classifier(0.0, 5);
        vs.copy(&start).unwrap();
        vs.set_device(gpu);
        let mut stepper = Stepper::new(&vs, &args).unwrap();
        let mut graphs = graphed.then(|| StepGraphs::new(gpu, &stepper).unwrap());
        let mut losses = vec![];
        for (k, &(b, s)) in plan.iter().enumerate() {
            // A changing rate: a rate frozen into the graph would show in the weights.
            let lr = 1e-3 * (1.0 + k as f64);
            let micro = [(1.0, batch(b, s, k as i64))];
            let mut loss = |x: &[Tensor]| Ok(net.batch_loss(x));
            let r = finetune::train::graphs::run_step(&mut graphs, &mut stepper, &micro, lr, k + 1, &mut loss).unwrap();
            losses.push(r.loss.double_value(&[]));
        }
        if let Some(g) = &graphs {
            assert_eq!((g.len(), g.replays), (2, 5), "graphs captured / steps replayed");
        }
        (vs, losses)
    };
    for fp16 in [false, true] {
        let (eager, eager_losses) = run(false, fp16);
        let (graphed, graph_losses) = run(true, fp16);
        for (a, b) in eager_losses.iter().zip(&graph_losses) {
            assert!((a - b).abs() < 1e-5, "losses differ (fp16 {fp16}): eager {eager_losses:?} graphed {graph_losses:?}");
        }
        // Replays run the eager step's kernels; the margin only allows for a different cuBLAS
        // algorithm on the side stream. A rate frozen at capture would be off by ~1e-3 per step.
        let d = max_diff(&eager, &graphed);
        assert!(d < 1e-4, "eager and graph-replayed training differ by {d} (fp16 {fp16})");
        assert!(max_diff(&eager, &start) > 1e-3, "the steps moved the weights (fp16 {fp16})");
    }
}

#[test]
fn cuda_graph_replays_draw_fresh_dropout_masks() {
    let Some(gpu) = cuda() else { return };
    use finetune::train::{args::TrainArgs, graphs::StepGraphs, step::Stepper};
    let (mut vs, net) = tiny_classifier(0.3, 6);
    vs.set_device(gpu);
    let args = TrainArgs { optim_kind: OptimizerKind::AdamwTorchFused, ..TrainArgs::default() };
    let mut stepper = Stepper::new(&vs, &args).unwrap();
    let mut graphs = Some(StepGraphs::new(gpu, &stepper).unwrap());
    let ids = Tensor::randint_low(5, 300, [4, 16], (Kind::Int64, Device::Cpu)).to_device(gpu);
    let micro = [(1.0, vec![ids.shallow_clone(), ids.zeros_like(), ids.ones_like(), Tensor::from_slice(&[0i64, 1, 0, 1]).to_device(gpu)])];
    // A zero rate (no weight decay by default): only the dropout masks can change the loss.
    let losses: Vec<f64> = (1..=5)
        .map(|k| {
            let mut loss = |x: &[Tensor]| Ok(net.batch_loss(x));
            finetune::train::graphs::run_step(&mut graphs, &mut stepper, &micro, 0.0, k, &mut loss).unwrap().loss.double_value(&[])
        })
        .collect();
    assert_eq!(graphs.as_ref().unwrap().replays, 4);
    assert!(losses[2] != losses[3] && losses[3] != losses[4], "replays repeated one dropout mask: {losses:?}");
}
