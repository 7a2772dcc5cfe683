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
    x * (keep_mask(&x.size(), x.kind(), p, x.device()) / (1.0 - p))
}

/// Which units dropout of a tensor of `size` keeps (1) and drops (0), from the generator `dropout`
/// would use; on the CPU, ATen's own draw for that shape, so a caller that applies parts of it
/// consumes the random stream the whole tensor's dropout consumes and drops the same units. The
/// kept ones are then scaled by 1 / (1 - p) (`keep / (1 - p)`, as ATen divides its noise; dividing
/// only the part used gives the same numbers). `0 < p < 1`.
pub fn keep_mask(size: &[i64], kind: Kind, p: f64, device: Device) -> Tensor {
    if CPU_MASKS.load(Ordering::Relaxed) {
        let keep = Tensor::empty(size, (kind, Device::Cpu)).bernoulli_float_(1.0 - p);
        if device == Device::Cpu { keep } else { keep.to_kind(Kind::Bool).to_device(device).to_kind(kind) }
    } else {
        Tensor::empty(size, (kind, device)).bernoulli_float_(1.0 - p)
    }
}

/// `keep_mask(&[rows, width], ...)` where only the first `lens[r]` entries of each row will be
/// read: on the CPU generator (the CPU, or `--dropout-rng cpu`) those entries are drawn exactly
/// and the others only skipped in the generator's stream (`torch_ext::bernoulli_prefix`), which
/// saves most of the cost of drawing them; elsewhere the whole mask is drawn.
pub fn keep_mask_prefix(rows: i64, width: i64, lens: &[i64], kind: Kind, p: f64, device: Device) -> Tensor {
    if device != Device::Cpu && !CPU_MASKS.load(Ordering::Relaxed) {
        return keep_mask(&[rows, width], kind, p, device);
    }
    let keep = crate::torch_ext::bernoulli_prefix(rows, width, lens, 1.0 - p).expect("a CPU bernoulli draw into a fresh tensor cannot fail");
    if device == Device::Cpu { keep.to_kind(kind) } else { keep.to_kind(Kind::Bool).to_device(device).to_kind(kind) }
}

/// Dropout of `rows` [tokens, width], the real tokens of a right-padded `[lengths.len(), seq,
/// width]` tensor (its rows at `index` once flattened to `[-1, width]`): the mask drawn for the
/// whole padded tensor, the real tokens' part applied.
pub fn dropout_rows(rows: &Tensor, lengths: &[i64], seq: i64, index: &Tensor, p: f64, train: bool) -> Tensor {
    if !train || p == 0.0 {
        return rows.shallow_clone();
    }
    if p >= 1.0 {
        return rows * Tensor::zeros([], (rows.kind(), rows.device()));
    }
    let width = *rows.size().last().expect("rows have a width");
    // Each sequence's real tokens lead its flattened `seq * width` entries.
    let lens: Vec<i64> = lengths.iter().map(|&n| n * width).collect();
    let keep = keep_mask_prefix(lengths.len() as i64, seq * width, &lens, rows.kind(), p, rows.device());
    rows * (keep.view([-1, width]).index_select(0, index) / (1.0 - p))
}

/// `scaled_dot_product_attention(q, k, v, mask, p)` with `mask` a bool [batch, 1, 1 or seq, seq]
/// (true = attend) or an additive float mask of that shape. With CPU masks it is ATen's math path
/// written out (what the CPU runs when dropout is on), its dropout replaced by ours.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, p: f64, train: bool) -> Tensor {
    let p = if train { p } else { 0.0 };
    if !cpu_masks(p, train) {
        return Tensor::scaled_dot_product_attention(q, k, v, Some(mask), p, false, None, false);
    }
    let (b, h, s, _) = q.size4().expect("attention inputs are [batch, heads, seq, head_dim]");
    let noise = keep_mask(&[b, h, s, k.size()[2]], q.kind(), p, q.device()) / (1.0 - p);
    attention_with_noise(q, k, v, mask, &noise)
}

/// ATen's math-path attention (what the CPU runs when dropout is on) with the dropout noise given:
/// the queries and keys each scaled by the fourth root of the head width, the mask added, the
/// safe softmax, the noise multiplied in.
pub fn attention_with_noise(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, noise: &Tensor) -> Tensor {
    let d = *q.size().last().expect("attention inputs have a head dimension");
    let s = (1.0 / (d as f64).sqrt()).sqrt();
    let bias = match mask.kind() {
        Kind::Bool => Tensor::zeros([], (q.kind(), q.device())).where_scalarother(mask, f64::NEG_INFINITY),
        _ => mask.shallow_clone(),
    };
    let scores = (q * s).matmul(&(k.transpose(-2, -1) * s)) + bias;
    (scores.internal_safe_softmax(-1, None) * noise).matmul(v)
}
