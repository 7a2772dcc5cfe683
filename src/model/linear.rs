//! The encoders' and heads' Linear layer: float, or int8 in a model `finetune quantize` wrote.
//! An int8 layer holds one int8 weight row and one float scale per output channel (weight ≈
//! int8 × scale, symmetric, as PyTorch's per-channel weight observer) and runs as
//! `torch.ao.nn.quantized.dynamic.Linear` does: the input quantized to uint8 over its own range at
//! every call, an int8 GEMM, the float bias added (`torch_ext::PackedLinear`). Inference only, on
//! the CPU: nothing back-propagates through int8 weights, so the training commands refuse such a
//! model (`BertConfig::refuse_quantized`).
use crate::model::config::BertConfig;
use crate::torch_ext::PackedLinear;
use std::sync::OnceLock;
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// The per-channel scales' variable, beside each int8 layer's `weight`.
pub const SCALE_SUFFIX: &str = "weight_scale";

#[derive(Debug)]
pub struct Linear {
    /// Float weights [out, in]; in an int8 layer, the int8 values held as floats (exactly), so
    /// that the checkpoint loader fills them like any other variable. The packed copy is what
    /// runs; these stay for saving and inspection, at four bytes a weight in memory.
    pub ws: Tensor,
    pub bs: Option<Tensor>,
    int8: Option<Int8>,
}

#[derive(Debug)]
struct Int8 {
    /// [out] float32.
    scale: Tensor,
    /// Packed at the first call, once the checkpoint's values are in `ws` and `scale`.
    packed: OnceLock<PackedLinear>,
}

/// A Linear layer with a bias, initialised as HF's `_init_weights` (N(0, initializer_range), zero
/// bias); int8 when the config carries finetune's `quantization_config`.
pub fn linear(p: nn::Path, i: i64, o: i64, cfg: &BertConfig) -> Linear {
    linear_with_bias(p, i, o, true, cfg)
}

/// [`linear`], with or without a bias.
pub fn linear_with_bias(p: nn::Path, i: i64, o: i64, bias: bool, cfg: &BertConfig) -> Linear {
    if cfg.is_quantized() {
        return Linear {
            ws: p.zeros_no_train("weight", &[o, i]),
            bs: bias.then(|| p.zeros_no_train("bias", &[o])),
            int8: Some(Int8 { scale: p.ones_no_train(SCALE_SUFFIX, &[o]), packed: OnceLock::new() }),
        };
    }
    let c = nn::LinearConfig { ws_init: nn::Init::Randn { mean: 0., stdev: cfg.initializer_range }, bs_init: bias.then_some(nn::Init::Const(0.)), bias };
    let l = nn::linear(p, i, o, c);
    Linear { ws: l.ws, bs: l.bs, int8: None }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        match &self.int8 {
            None => x.linear(&self.ws, self.bs.as_ref()),
            Some(q) => {
                let packed = q.packed.get_or_init(|| pack(&self.ws, &q.scale, self.bs.as_ref()).expect("packing int8 weights (checked when the model loaded)"));
                packed.forward(x, reduce_range()).expect("an int8 Linear on a float CPU input")
            }
        }
    }
}

/// Quantizes float weights [out, in] per output channel as PyTorch's
/// `PerChannelMinMaxObserver(qint8, per_channel_symmetric)` + `quantize_per_channel` do: scale =
/// max|w| / 127.5 (at least float32's epsilon), values round(w / scale) clamped to [-128, 127].
/// Returns the int8 values and the float32 scales.
pub fn quantize_weight(w: &Tensor) -> (Tensor, Tensor) {
    let w = w.to_kind(Kind::Float).to_device(Device::Cpu);
    let scale = (w.abs().amax([1].as_slice(), false) / 127.5).clamp_min(f32::EPSILON as f64);
    let zero = Tensor::zeros([scale.size()[0]], (Kind::Int64, Device::Cpu));
    let q = w.quantize_per_channel(&scale.to_kind(Kind::Double), &zero, 0, Kind::QInt8);
    (q.int_repr(), scale)
}

fn pack(int8_values: &Tensor, scale: &Tensor, bias: Option<&Tensor>) -> crate::Result<PackedLinear> {
    let values = int8_values.to_kind(Kind::Int8);
    let zero = Tensor::zeros([scale.size()[0]], (Kind::Int64, Device::Cpu));
    let q = Tensor::internal_make_per_channel_quantized_tensor(&values, &scale.to_kind(Kind::Double), &zero, 0);
    PackedLinear::new(&q, bias)
}

/// Checks up front that this libtorch runs int8 Linear layers, so a model fails to load with a
/// reason rather than at its first call: packs and runs a 2×2 layer.
pub fn check_int8_support() -> crate::Result<()> {
    let (q, s) = quantize_weight(&Tensor::from_slice(&[1.0f32, -2.0, 0.5, 4.0]).view([2, 2]));
    let y = pack(&q.to_kind(Kind::Float), &s, None)?.forward(&Tensor::ones([1, 2], (Kind::Float, Device::Cpu)), reduce_range())?;
    if y.size() != [1, 2] {
        return Err(crate::Error::Invalid(format!("int8 Linear: a [1, 2] input gave {:?}", y.size())));
    }
    Ok(())
}

/// Whether activations use 7 bits: without AVX-512 VNNI, FBGEMM's int8 kernels sum pairs of
/// products in saturating 16-bit lanes, which the full uint8 range overflows (measured on such a
/// CPU: 10.8% error on a 384→1536 layer, 2.3% with 7 bits); with VNNI the sums are 32-bit and the
/// full range is both safe and finer. The GEMM's kernels are FBGEMM's choice (its CPU detection,
/// restricted by `FBGEMM_ENABLE_INSTRUCTIONS`), so FBGEMM is asked. PyTorch's dynamic Linear always reduces;
/// `FINETUNE_INT8_REDUCE_RANGE=true|false` overrides the choice (`true` computes what PyTorch does).
pub fn reduce_range() -> bool {
    static REDUCE: OnceLock<bool> = OnceLock::new();
    *REDUCE.get_or_init(|| {
        match std::env::var("FINETUNE_INT8_REDUCE_RANGE").ok().as_deref() {
            Some("true" | "1") => return true,
            Some("false" | "0") => return false,
            Some(other) => tracing::warn!("FINETUNE_INT8_REDUCE_RANGE={other} ignored; expected true or false"),
            None => {}
        }
        !crate::torch_ext::int8_gemm_has_vnni()
    })
}
