//! DeBERTa-v2 and -v3 (`model_type: deberta-v2`), as transformers' `DebertaV2Model`: disentangled
//! attention adds to the content-to-content scores a content-to-position and a
//! position-to-content term computed from shared relative-position embeddings
//! (`encoder.rel_embeddings`, optionally layer-normed), with relative distances bucketed
//! logarithmically beyond `position_buckets / 2`; keys (and queries) of positions come from the
//! layer's own projections (`share_att_key`, v3) or separate `pos_key_proj` / `pos_query_proj`.
//! The operations follow transformers' order (the key divided by the scale before its product,
//! one dropout of the relative embeddings per layer) so that results and random draws agree.
use crate::model::bert::{activation, embedding, layer_norm_of as layer_norm};
use crate::model::linear::{linear, linear_with_bias, Linear};
use crate::model::config::{BertConfig, DebertaOptions};
use crate::model::dropout::dropout;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// transformers' `build_relative_position`: `q - k` for every query and key index, bucketed
/// logarithmically (`make_log_bucket_position`) when `buckets > 0`; [1, q, k] i64.
pub fn relative_positions(q: i64, k: i64, buckets: i64, max_position: i64, device: tch::Device) -> Tensor {
    let q_ids = Tensor::arange(q, (Kind::Int64, device));
    let k_ids = Tensor::arange(k, (Kind::Int64, device));
    let rel = q_ids.unsqueeze(1) - k_ids.unsqueeze(0);
    let rel = if buckets > 0 && max_position > 0 {
        let mid = buckets / 2;
        let sign = rel.sign();
        let inner = rel.lt(mid).logical_and(&rel.gt(-mid));
        let abs = rel.abs().where_self(&inner.logical_not(), &Tensor::from(mid - 1).to_device(device));
        let denom = Tensor::from(((max_position - 1) as f64 / mid as f64) as f32).to_device(device).log();
        let log_pos = ((abs.to_kind(Kind::Float) / mid as f64).log() / denom * (mid - 1) as f64).ceil() + mid as f64;
        rel.to_kind(Kind::Float).where_self(&abs.le(mid), &(log_pos * sign.to_kind(Kind::Float))).to_kind(Kind::Int64)
    } else {
        rel
    };
    rel.unsqueeze(0)
}

#[derive(Debug)]
struct Embeddings {
    word: nn::Embedding,
    position: Option<nn::Embedding>,
    token_type: Option<nn::Embedding>,
    /// `embed_proj` (no bias) when `embedding_size` differs from `hidden_size`.
    project: Option<Linear>,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    fn new(p: nn::Path, cfg: &BertConfig, o: &DebertaOptions) -> Self {
        let e = cfg.embedding_size.unwrap_or(cfg.hidden_size);
        Embeddings {
            word: embedding(&p / "word_embeddings", cfg.vocab_size, e, cfg.pad_token_id, cfg),
            position: o.position_biased_input.then(|| embedding(&p / "position_embeddings", cfg.max_position_embeddings, e, -1, cfg)),
            token_type: (cfg.type_vocab_size > 0).then(|| embedding(&p / "token_type_embeddings", cfg.type_vocab_size, e, -1, cfg)),
            project: (e != cfg.hidden_size).then(|| linear_with_bias(&p / "embed_proj", e, cfg.hidden_size, false, cfg)),
            layer_norm: layer_norm(&p / "LayerNorm", cfg.hidden_size, cfg),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let mut x = self.word.forward(input_ids);
        if let Some(pos) = &self.position {
            x += pos.forward(&Tensor::arange(input_ids.size()[1], (Kind::Int64, input_ids.device())).unsqueeze(0));
        }
        if let Some(tt) = &self.token_type {
            x += tt.forward(token_type_ids);
        }
        if let Some(p) = &self.project {
            x = p.forward(&x);
        }
        let x = self.layer_norm.forward(&x) * mask.unsqueeze(2).to_kind(x.kind());
        dropout(&x, self.dropout, train)
    }
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    pos_key: Option<Linear>,
    pos_query: Option<Linear>,
    attn_out: Linear,
    attn_ln: nn::LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_ln: nn::LayerNorm,
    heads: i64,
    act: String,
    hidden_dropout: f64,
    attn_dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, cfg: &BertConfig, o: &DebertaOptions) -> Self {
        let h = cfg.hidden_size;
        let s = &p / "attention" / "self";
        let out = &p / "attention" / "output";
        let separate = o.relative_attention && !o.share_att_key;
        Layer {
            query: linear(&s / "query_proj", h, h, cfg),
            key: linear(&s / "key_proj", h, h, cfg),
            value: linear(&s / "value_proj", h, h, cfg),
            pos_key: (separate && o.c2p).then(|| linear(&s / "pos_key_proj", h, h, cfg)),
            pos_query: (separate && o.p2c).then(|| linear(&s / "pos_query_proj", h, h, cfg)),
            attn_out: linear(&out / "dense", h, h, cfg),
            attn_ln: layer_norm(&out / "LayerNorm", h, cfg),
            intermediate: linear(&p / "intermediate" / "dense", h, cfg.intermediate_size, cfg),
            output: linear(&p / "output" / "dense", cfg.intermediate_size, h, cfg),
            out_ln: layer_norm(&p / "output" / "LayerNorm", h, cfg),
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act.clone(),
            hidden_dropout: cfg.hidden_dropout_prob,
            attn_dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// [b, s, h] → [b·heads, s, d], as transformers' `transpose_for_scores`.
    fn split(&self, x: &Tensor) -> Tensor {
        let (b, s, h) = x.size3().expect("[batch, seq, hidden]");
        x.view([b, s, self.heads, h / self.heads]).permute([0, 2, 1, 3]).contiguous().view([-1, s, h / self.heads])
    }

    /// `pair_mask`: bool [b, 1, s, s]; `rel`: the relative positions and (normed) embeddings.
    fn forward(&self, x: &Tensor, pair_mask: &Tensor, rel: Option<(&Tensor, &Tensor)>, o: &DebertaOptions, train: bool) -> Tensor {
        let (b, s, h) = x.size3().expect("[batch, seq, hidden]");
        let q = self.split(&self.query.forward(x));
        let k = self.split(&self.key.forward(x));
        let v = self.split(&self.value.forward(x));
        let d = h / self.heads;
        let factor = 1 + o.c2p as i64 + o.p2c as i64;
        let scale = Tensor::from((d * factor) as f32).sqrt();
        let mut scores = q.bmm(&(k.transpose(-1, -2) / &scale));
        if let Some((rel_pos, rel_emb)) = rel {
            let span = o.span;
            let rel_emb = dropout(rel_emb, self.hidden_dropout, train).narrow(0, 0, span * 2).unsqueeze(0);
            let repeat = |t: Tensor| t.repeat([b, 1, 1]);
            let index = |pos: &Tensor| pos.squeeze_dim(0).expand([b * self.heads, s, s], false);
            // Summed apart, then added to the content scores, in transformers' order.
            let mut bias: Option<Tensor> = None;
            if o.c2p {
                let pos_key = repeat(self.split(&self.pos_key.as_ref().unwrap_or(&self.key).forward(&rel_emb)));
                let c2p = q.bmm(&pos_key.transpose(-1, -2));
                let c2p_pos = (rel_pos + span).clamp(0, span * 2 - 1);
                bias = Some(c2p.gather(-1, &index(&c2p_pos), false) / &scale);
            }
            if o.p2c {
                let pos_query = repeat(self.split(&self.pos_query.as_ref().unwrap_or(&self.query).forward(&rel_emb)));
                let p2c_pos = (-rel_pos + span).clamp(0, span * 2 - 1);
                let p2c = k.bmm(&pos_query.transpose(-1, -2));
                let term = p2c.gather(-1, &index(&p2c_pos), false).transpose(-1, -2) / &scale;
                bias = Some(match bias {
                    Some(b) => b + term,
                    None => term,
                });
            }
            if let Some(bias) = bias {
                scores += bias;
            }
        }
        // torch.finfo(dtype).min, as transformers fills: f32's would overflow half precision to
        // -inf, and a fully masked (padding) row would then turn into NaN.
        let lowest = match scores.kind() {
            Kind::Half => -65504.0,
            Kind::BFloat16 => -3.3895313892515355e38,
            _ => f32::MIN as f64,
        };
        let scores = scores.view([-1, self.heads, s, s]).masked_fill(&pair_mask.logical_not(), lowest);
        let probs = dropout(&scores.softmax(-1, Kind::Float), self.attn_dropout, train);
        let ctx = probs.view([-1, s, s]).bmm(&v).view([-1, self.heads, s, d]).permute([0, 2, 1, 3]).contiguous().view([b, s, h]);
        let a = self.attn_ln.forward(&(dropout(&self.attn_out.forward(&ctx), self.hidden_dropout, train) + x));
        let i = activation(&self.act, &self.intermediate.forward(&a));
        self.out_ln.forward(&(dropout(&self.output.forward(&i), self.hidden_dropout, train) + a))
    }
}

/// `DebertaV2Model`: last hidden states [batch, seq, hidden].
#[derive(Debug)]
pub struct Deberta {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    rel_embeddings: Option<nn::Embedding>,
    rel_ln: Option<nn::LayerNorm>,
    pub options: DebertaOptions,
}

impl Deberta {
    /// Builds the encoder under `p` (`deberta`).
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let enc = &p / "encoder";
        let o = cfg.deberta_options();
        let table = if o.position_buckets > 0 { o.position_buckets * 2 } else { o.max_relative_positions * 2 };
        Deberta {
            embeddings: Embeddings::new(&p / "embeddings", cfg, &o),
            layers: (0..cfg.num_hidden_layers).map(|i| Layer::new(&enc / "layer" / i, cfg, &o)).collect(),
            rel_embeddings: o.relative_attention.then(|| embedding(&enc / "rel_embeddings", table, cfg.hidden_size, -1, cfg)),
            rel_ln: (o.relative_attention && o.norm_rel_ebd).then(|| layer_norm(&enc / "LayerNorm", cfg.hidden_size, cfg)),
            options: o,
        }
    }

    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, mut states: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut x = self.embeddings.forward(input_ids, token_type_ids, attention_mask, train);
        let m = attention_mask.to_kind(Kind::Bool);
        let pair_mask = m.unsqueeze(1).unsqueeze(2).logical_and(&m.unsqueeze(1).unsqueeze(3));
        let s = input_ids.size()[1];
        let rel = self.rel_embeddings.as_ref().map(|e| {
            let table = match &self.rel_ln {
                Some(ln) => ln.forward(&e.ws),
                None => e.ws.shallow_clone(),
            };
            (relative_positions(s, s, self.options.position_buckets, self.options.max_relative_positions, x.device()), table)
        });
        for layer in &self.layers {
            if let Some(s) = states.as_deref_mut() {
                s.push(x.shallow_clone());
            }
            x = layer.forward(&x, &pair_mask, rel.as_ref().map(|(p, t)| (p, t)), &self.options, train);
        }
        if let Some(s) = states {
            s.push(x.shallow_clone());
        }
        x
    }
}
