//! The c10d shim (`csrc/dist.cpp`, `finetune::torch_dist`): ranks (threads here, one process
//! group each) rendezvous over a TCPStore, Gloo's broadcast, all-reduce, all-gather and barrier
//! give the expected tensors, and DDP's Reducer leaves every rank with the mean of the ranks'
//! gradients after an ordinary backward — on the first step and after the buckets are rebuilt,
//! with a parameter the loss does not reach among them.
use finetune::torch_dist::{ProcessGroup, Reducer, Rendezvous};
use std::time::Duration;
use tch::{Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn on_ranks<T: Send + 'static>(world: usize, f: impl Fn(ProcessGroup) -> T + Send + Sync + Clone + 'static) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || {
                let r = Rendezvous { host: "127.0.0.1".into(), port, rank, world_size: world, agent_store: false, attempt: 0, timeout: Duration::from_secs(60) };
                f(ProcessGroup::join(&r).unwrap())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn collectives_give_every_rank_the_same_answer() {
    let out = on_ranks(3, |g| {
        let r = g.rank as f64;
        let b = if g.rank == 1 { Tensor::from_slice(&[7.0f32, 8.0]) } else { Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)) };
        g.broadcast(&[&b], 1).unwrap();
        let s = Tensor::from_slice(&[r + 1.0, 10.0 * r]);
        g.all_reduce_sum(&[&s]).unwrap();
        let gathered = g.all_gather(&Tensor::from_slice(&[r, -r])).unwrap();
        g.barrier().unwrap();
        (Vec::<f32>::try_from(b).unwrap(), Vec::<f64>::try_from(s).unwrap(), Vec::<f64>::try_from(gathered.view([-1])).unwrap())
    });
    for (b, s, gathered) in out {
        assert_eq!(b, vec![7.0, 8.0]);
        assert_eq!(s, vec![6.0, 30.0]);
        assert_eq!(gathered, vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
    }
}

/// The gradients of a small two-layer net on `x`.
fn net(w1: &Tensor, w2: &Tensor, x: &Tensor) -> Tensor {
    x.matmul(&w1.tr()).tanh().matmul(&w2.tr()).pow_tensor_scalar(2).mean(Kind::Double)
}

#[test]
fn the_reducer_averages_gradients_across_ranks() {
    let world = 2;
    // Deterministic values without the global generator, which the rank threads share.
    let wave = |n: i64, f: f64| (Tensor::arange(n, (Kind::Double, tch::Device::Cpu)) * f).sin();
    let init = move || (wave(15, 0.7).view([5, 3]), wave(10, 1.3).view([2, 5]));
    let data = move |rank: usize, step: usize| wave(12, 0.37 + 0.11 * rank as f64 + 0.05 * step as f64).view([4, 3]) * 2.0;
    let got = on_ranks(world, move |g| {
        let (w1, w2) = init();
        let (w1, w2) = (w1.set_requires_grad(true), w2.set_requires_grad(true));
        // A parameter the loss never reaches (as a layer a head skips): with
        // find_unused the reducer does not wait for its gradient, step after step.
        let unused = Tensor::zeros([3], (Kind::Double, tch::Device::Cpu)).set_requires_grad(true);
        let mut reducer = Reducer::new(&g, &[&w1, &unused, &w2], true).unwrap();
        (0..3)
            .map(|step| {
                reducer.prepare_forward().unwrap();
                let loss = net(&w1, &w2, &data(g.rank, step));
                reducer.prepare_backward(&loss).unwrap();
                loss.backward();
                let grads = [w1.grad().copy(), w2.grad().copy()];
                let _ = w1.grad().zero_();
                let _ = w2.grad().zero_();
                grads
            })
            .collect::<Vec<_>>()
    });
    let (w1, w2) = init();
    for step in 0..3 {
        let mut want = [w1.zeros_like(), w2.zeros_like()];
        for rank in 0..world {
            let (a, b) = (w1.copy().set_requires_grad(true), w2.copy().set_requires_grad(true));
            net(&a, &b, &data(rank, step)).backward();
            want[0] += a.grad() / world as f64;
            want[1] += b.grad() / world as f64;
        }
        for (rank, grads) in got.iter().enumerate() {
            for (g, w) in grads[step].iter().zip(&want) {
                let d = (g - w).abs().max().double_value(&[]);
                assert!(d < 1e-12, "rank {rank} step {step}: gradient differs from the ranks' mean by {d}");
            }
        }
    }
}
