//! ModernBERT (`model_type: modernbert`), as transformers' `ModernBertModel` runs it with SDPA
//! attention on padded batches: token embeddings → norm → dropout, then pre-norm layers (no norm
//! before layer 0's attention) whose attention takes rotary positions — every
//! `global_attn_every_n_layers`-th layer attending globally with `global_rope_theta`, the others
//! within a sliding window of `local_attention / 2` tokens each side with `local_rope_theta` —
//! and whose MLP is a GeGLU (`Wi` gives input and gate, `act(input) · gate` → `Wo`), then a final
//! norm. Biases and norm biases only where the config switches them on. The masks are
//! transformers' additive float ones and the operations follow its order, so that results and
//! random draws agree; `PredictionHead` is the dense → activation → norm block its
//! classification and QA heads share.
use crate::model::bert::{activation, embedding};
use crate::model::config::{BertConfig, ModernBertOptions};
use crate::model::linear::{linear_with_bias as linear, Linear};
use crate::model::dropout::{attention, dropout};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// A LayerNorm whose bias exists only with `norm_bias`.
#[derive(Debug)]
struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    fn new(p: nn::Path, h: i64, o: &ModernBertOptions) -> Self {
        Norm {
            weight: p.var("weight", &[h], nn::Init::Const(1.)),
            bias: o.norm_bias.then(|| p.var("bias", &[h], nn::Init::Const(0.))),
            eps: o.norm_eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = *x.size().last().expect("a hidden dimension");
        x.layer_norm([h], Some(&self.weight), self.bias.as_ref(), self.eps, true)
    }
}

/// `cos` and `sin` [1, seq, head_dim] of the default rotary embedding with base `theta`, computed
/// as transformers' `ModernBertRotaryEmbedding` does (float32, `1 / theta^(2i/d)` times the
/// position through a matmul, the frequencies repeated).
fn rotary(theta: f64, head_dim: i64, seq: i64, device: tch::Device) -> (Tensor, Tensor) {
    let exponents = Tensor::arange_start_step(0, head_dim, 2, (Kind::Int64, device)).to_kind(Kind::Float) / head_dim as f64;
    let inv_freq = Tensor::pow_scalar(theta, &exponents).reciprocal();
    let positions = Tensor::arange(seq, (Kind::Int64, device)).to_kind(Kind::Float);
    let freqs = inv_freq.view([1, -1, 1]).matmul(&positions.view([1, 1, -1])).transpose(1, 2);
    let emb = Tensor::cat(&[&freqs, &freqs], -1);
    (emb.cos(), emb.sin())
}

fn rotate_half(x: &Tensor) -> Tensor {
    let halves = x.chunk(2, -1);
    Tensor::cat(&[&halves[1].neg(), &halves[0]], -1)
}

#[derive(Debug)]
struct Layer {
    attn_norm: Option<Norm>,
    wqkv: Linear,
    attn_wo: Linear,
    mlp_norm: Norm,
    wi: Linear,
    mlp_wo: Linear,
    heads: i64,
    global: bool,
}

/// Per forward pass: the rotary tables and masks the global and the local layers use.
struct Context {
    global: (Tensor, Tensor, Tensor),
    local: (Tensor, Tensor, Tensor),
}

impl Layer {
    fn new(p: nn::Path, id: i64, cfg: &BertConfig, o: &ModernBertOptions) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let (attn, mlp) = (&p / "attn", &p / "mlp");
        Layer {
            attn_norm: (id > 0).then(|| Norm::new(&p / "attn_norm", h, o)),
            wqkv: linear(&attn / "Wqkv", h, 3 * h, o.attention_bias, cfg),
            attn_wo: linear(&attn / "Wo", h, h, o.attention_bias, cfg),
            mlp_norm: Norm::new(&p / "mlp_norm", h, o),
            wi: linear(&mlp / "Wi", h, 2 * i, o.mlp_bias, cfg),
            mlp_wo: linear(&mlp / "Wo", i, h, o.mlp_bias, cfg),
            heads: cfg.num_attention_heads,
            global: id % o.global_attn_every_n_layers == 0,
        }
    }

    fn forward(&self, x: &Tensor, ctx: &Context, o: &ModernBertOptions, train: bool) -> Tensor {
        let (b, s, h) = x.size3().expect("hidden states are [batch, seq, hidden]");
        let normed = match &self.attn_norm {
            Some(n) => n.forward(x),
            None => x.shallow_clone(),
        };
        let qkv = self.wqkv.forward(&normed).view([b, s, 3, self.heads, h / self.heads]).transpose(3, 1);
        let qkv = qkv.unbind(2);
        let (cos, sin, mask) = if self.global { &ctx.global } else { &ctx.local };
        let (cos, sin) = (cos.unsqueeze(1), sin.unsqueeze(1));
        let q = &qkv[0] * &cos + rotate_half(&qkv[0]) * &sin;
        let k = &qkv[1] * &cos + rotate_half(&qkv[1]) * &sin;
        let ctx = attention(&q, &k, &qkv[2], mask, o.attention_dropout, train).transpose(1, 2).contiguous().view([b, s, h]);
        let x = x + dropout(&self.attn_wo.forward(&ctx), o.attention_dropout, train);
        let gate = self.wi.forward(&self.mlp_norm.forward(&x)).chunk(2, -1);
        let glu = activation(&o.hidden_activation, &gate[0]) * &gate[1];
        &x + self.mlp_wo.forward(&dropout(&glu, o.mlp_dropout, train))
    }
}

/// `ModernBertModel`: the last hidden states.
#[derive(Debug)]
pub struct ModernBert {
    tok_embeddings: nn::Embedding,
    embedding_norm: Norm,
    layers: Vec<Layer>,
    final_norm: Norm,
    options: ModernBertOptions,
    head_dim: i64,
}

impl ModernBert {
    /// Builds the encoder under `p` (`model`, transformers' base-model prefix for ModernBERT).
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let o = cfg.modernbert_options();
        let e = &p / "embeddings";
        ModernBert {
            tok_embeddings: embedding(&e / "tok_embeddings", cfg.vocab_size, cfg.hidden_size, cfg.pad_token_id, cfg),
            embedding_norm: Norm::new(&e / "norm", cfg.hidden_size, &o),
            layers: (0..cfg.num_hidden_layers).map(|i| Layer::new(&p / "layers" / i, i, cfg, &o)).collect(),
            final_norm: Norm::new(&p / "final_norm", cfg.hidden_size, &o),
            head_dim: cfg.hidden_size / cfg.num_attention_heads,
            options: o,
        }
    }

    /// Last hidden states [batch, seq, hidden]; ModernBERT has no token types.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool, mut states: Option<&mut Vec<Tensor>>) -> Tensor {
        let o = &self.options;
        let (b, s) = input_ids.size2().expect("input ids are [batch, seq]");
        let device = input_ids.device();
        let min = f32::MIN as f64;
        // transformers' `_prepare_4d_attention_mask`: 0 where a key may be attended to, the
        // dtype's minimum elsewhere; the local layers' mask also hides keys beyond the window.
        let keep = attention_mask.to_kind(Kind::Float).view([b, 1, 1, s]).expand([b, 1, s, s], false);
        let inverted = keep.neg() + 1.0;
        let global_mask = inverted.masked_fill(&inverted.to_kind(Kind::Bool), min);
        let rows = Tensor::arange(s, (Kind::Int64, device));
        let distance = (rows.unsqueeze(0) - rows.unsqueeze(1)).abs();
        let window = distance.le(o.local_attention / 2).view([1, 1, s, s]);
        let local_mask = global_mask.masked_fill(&window.logical_not(), min);
        let (gc, gs) = rotary(o.global_rope_theta, self.head_dim, s, device);
        let (lc, ls) = rotary(o.local_rope_theta, self.head_dim, s, device);
        let ctx = Context { global: (gc, gs, global_mask), local: (lc, ls, local_mask) };
        let mut x = dropout(&self.embedding_norm.forward(&self.tok_embeddings.forward(input_ids)), o.embedding_dropout, train);
        for layer in &self.layers {
            if let Some(s) = states.as_deref_mut() {
                s.push(x.shallow_clone());
            }
            x = layer.forward(&x, &ctx, o, train);
        }
        // transformers' last hidden state in `hidden_states` is the one before the final norm.
        if let Some(s) = states {
            s.push(x.shallow_clone());
        }
        self.final_norm.forward(&x)
    }
}

/// `ModernBertPredictionHead` (`head.dense` → `classifier_activation` → `head.norm`), under both
/// the sequence-classification and the QA outputs.
#[derive(Debug)]
pub struct PredictionHead {
    dense: Linear,
    norm: Norm,
    act: String,
}

impl PredictionHead {
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let o = cfg.modernbert_options();
        PredictionHead {
            dense: linear(&p / "dense", cfg.hidden_size, cfg.hidden_size, o.classifier_bias, cfg),
            norm: Norm::new(&p / "norm", cfg.hidden_size, &o),
            act: o.classifier_activation,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.norm.forward(&activation(&self.act, &self.dense.forward(x)))
    }
}

/// transformers' `_init_weights` for a ModernBERT variable a checkpoint lacked: LayerNorm weights
/// 1, biases 0, the head's dense layer and the classifier drawn with `trunc_normal_` (std
/// `initializer_range / √(2·layers)` and `hidden_size^-½`, cut at `initializer_cutoff_factor`
/// stds) from the current CPU generator.
pub fn init_new_weight(name: &str, v: &mut Tensor, cfg: &BertConfig) {
    let o = cfg.modernbert_options();
    if name.ends_with(".bias") {
        let _ = v.zero_();
    } else if name.contains("norm.") {
        let _ = v.fill_(1.0);
    } else {
        let std = if name.starts_with("classifier.") {
            (cfg.hidden_size as f64).powf(-0.5)
        } else {
            cfg.initializer_range / (2.0 * cfg.num_hidden_layers as f64).sqrt()
        };
        trunc_normal(v, std, o.initializer_cutoff_factor);
    }
}

/// `torch.nn.init.trunc_normal_(v, 0, std, -cutoff·std, cutoff·std)`, step for step: uniform
/// draws between the bounds' CDFs, mapped through erfinv.
fn trunc_normal(v: &mut Tensor, std: f64, cutoff: f64) {
    // C's erf through ATen, as Python's math.erf is.
    let cdf = |x: f64| (1.0 + Tensor::from(x / 2f64.sqrt()).erf().double_value(&[])) / 2.0;
    let (a, b) = (-cutoff * std, cutoff * std);
    let (l, u) = (cdf(a / std), cdf(b / std));
    let _ = v.uniform_(2.0 * l - 1.0, 2.0 * u - 1.0);
    let _ = v.erfinv_();
    let _ = v.g_mul_scalar_(std * 2f64.sqrt());
    let _ = v.g_add_scalar_(0.0);
    let _ = v.clamp_(a, b);
}
