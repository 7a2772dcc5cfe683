//! Dropout, attention dropout and stochastic depth, whose masks can come from the CPU generator
//! whatever the device (`--dropout-rng cpu`). A CUDA run then draws exactly the masks the CPU run
//! of the same seed draws, so the two differ only by floating-point rounding; with the device's
//! own generator (the default, and PyTorch's behaviour) they share the head, the data order and
//! nothing else. The cost is a host draw and a copy per mask: a reproducibility mode, not a fast
//! one.
use std::sync::atomic::{AtomicBool, Ordering};
use tch::{Device, Kind, Tensor};

static CPU_MASKS: AtomicBool = AtomicBool::new(false);

/// Where dropout masks come from (`--dropout-rng`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DropoutRng {
    /// The generator of the tensor's device (PyTorch's behaviour).
    Device,
    /// The CPU generator on every device.
    Cpu,
}

/// Process-wide, since masks are drawn deep inside the models' forward passes.
pub fn set_dropout_rng(rng: DropoutRng) {
    CPU_MASKS.store(rng == DropoutRng::Cpu, Ordering::Relaxed);
}

fn cpu_masks(p: f64, train: bool) -> bool {
    train && p > 0.0 && p < 1.0 && CPU_MASKS.load(Ordering::Relaxed)
}

/// The noise ATen's CPU dropout multiplies by (`bernoulli_(1 - p)`, then `/ (1 - p)`), drawn on
/// the CPU and put on `device`. It travels as bool and is scaled there: 1 / (1 - p) rounds the
/// same on both sides.
fn cpu_noise(size: &[i64], kind: Kind, p: f64, device: Device) -> Tensor {
    let keep = Tensor::empty(size, (kind, Device::Cpu)).bernoulli_float_(1.0 - p);
    let keep = if device == Device::Cpu { keep } else { keep.to_kind(Kind::Bool).to_device(device).to_kind(kind) };
    keep / (1.0 - p)
}

/// Uniform [0, 1) floats of `size` on `device` (stochastic depth's draws), from the CPU generator
/// with `--dropout-rng cpu`.
pub fn uniform(size: &[i64], device: Device) -> Tensor {
    if CPU_MASKS.load(Ordering::Relaxed) {
        Tensor::rand(size, (Kind::Float, Device::Cpu)).to_device(device)
    } else {
        Tensor::rand(size, (Kind::Float, device))
    }
}

/// `x.dropout(p, train)`.
pub fn dropout(x: &Tensor, p: f64, train: bool) -> Tensor {
    if !cpu_masks(p, train) {
        return x.dropout(p, train);
    }
    x * cpu_noise(&x.size(), x.kind(), p, x.device())
}

/// `scaled_dot_product_attention(q, k, v, mask, p)` with `mask` a bool [batch, 1, 1 or seq, seq]
/// (true = attend) or an additive float mask of that shape. With CPU masks it is ATen's math path
/// written out (what the CPU runs when dropout is on), its dropout replaced by ours.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, p: f64, train: bool) -> Tensor {
    let p = if train { p } else { 0.0 };
    if !cpu_masks(p, train) {
        return Tensor::scaled_dot_product_attention(q, k, v, Some(mask), p, false, None, false);
    }
    let d = *q.size().last().expect("attention inputs have a head dimension");
    let s = (1.0 / (d as f64).sqrt()).sqrt();
    let bias = match mask.kind() {
        Kind::Bool => Tensor::zeros([], (q.kind(), q.device())).where_scalarother(mask, f64::NEG_INFINITY),
        _ => mask.shallow_clone(),
    };
    let scores = (q * s).matmul(&(k.transpose(-2, -1) * s)) + bias;
    dropout(&scores.internal_safe_softmax(-1, None), p, train).matmul(v)
}
