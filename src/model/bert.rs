//! The BERT encoder (embeddings → N transformer layers → pooler) in tch's nn style, and RoBERTa's,
//! which differs only in its position ids (counted from `pad_token_id + 1` over non-padding
//! tokens, the padding row frozen) and has no pooler under its task heads; ELECTRA's, whose
//! embeddings may be narrower than its layers (`embeddings_project` widens them); and
//! DistilBERT's (`transformer.layer.N` with `q_lin`, ..., no token types, no dropout between the
//! attention projection and its residual). Variable names follow
//! Hugging Face's `BertModel` / `RobertaModel` exactly, so checkpoints load and save without a
//! name map. Dropout is real (active only when `train` is true); attention runs through SDPA, like
//! transformers' default `sdpa` attention. Hidden states are in a `unpad::Layout`: padded as
//! transformers computes them, or the real tokens only.
use crate::model::config::{BertConfig, Family};
use crate::model::linear::{linear, Linear};
use crate::model::unpad::Layout;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

fn layer_norm(p: nn::Path, cfg: &BertConfig) -> nn::LayerNorm {
    layer_norm_of(p, cfg.hidden_size, cfg)
}

pub(crate) fn layer_norm_of(p: nn::Path, width: i64, cfg: &BertConfig) -> nn::LayerNorm {
    let c = nn::LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() };
    nn::layer_norm(p, vec![width], c)
}

/// `padding_idx`: the row whose gradient is dropped (transformers sets pad_token_id on the word
/// embeddings only). It matters where a loss reads padded positions, as QA's start/end
/// softmax over the whole sequence does.
pub(crate) fn embedding(p: nn::Path, n: i64, d: i64, padding_idx: i64, cfg: &BertConfig) -> nn::Embedding {
    let c = nn::EmbeddingConfig { ws_init: nn::Init::Randn { mean: 0., stdev: cfg.initializer_range }, padding_idx, ..Default::default() };
    nn::embedding(p, n, d, c)
}

/// `hidden_act` by name, as transformers' ACT2FN for the names these configs use.
pub(crate) fn activation(name: &str, x: &Tensor) -> Tensor {
    match name {
        "gelu_new" | "gelu_pytorch_tanh" => x.gelu("tanh"),
        "relu" => x.relu(),
        "tanh" => x.tanh(),
        _ => x.gelu("none"),
    }
}

#[derive(Debug)]
struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    /// None for DistilBERT, which has no token types.
    token_type: Option<nn::Embedding>,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    family: Family,
    pad: i64,
}

impl Embeddings {
    fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let family = cfg.family();
        let position_pad = if family == Family::Roberta { cfg.pad_token_id } else { -1 };
        let e = cfg.embedding_width();
        Embeddings {
            word: embedding(&p / "word_embeddings", cfg.vocab_size, e, cfg.pad_token_id, cfg),
            position: embedding(&p / "position_embeddings", cfg.max_position_embeddings, e, position_pad, cfg),
            token_type: (family != Family::DistilBert).then(|| embedding(&p / "token_type_embeddings", cfg.type_vocab_size, e, -1, cfg)),
            layer_norm: layer_norm_of(&p / "LayerNorm", e, cfg),
            dropout: cfg.hidden_dropout_prob,
            family,
            pad: cfg.pad_token_id,
        }
    }

    /// BERT: 0, 1, ...; RoBERTa: `pad + 1`, `pad + 2`, ... over real tokens and `pad` on padding
    /// (transformers' `create_position_ids_from_input_ids`).
    fn position_ids(&self, input_ids: &Tensor) -> Tensor {
        match self.family {
            Family::Roberta => {
                let real = input_ids.ne(self.pad).to_kind(Kind::Int64);
                real.cumsum(1, Kind::Int64) * &real + self.pad
            }
            _ => Tensor::arange(input_ids.size()[1], (Kind::Int64, input_ids.device())).unsqueeze(0),
        }
    }

    /// The embeddings after LayerNorm and dropout, in `layout`.
    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let positions = self.position_ids(input_ids);
        // RoBERTa's tokenizers give the model no token types (transformers leaves them out of its
        // inputs), so it sees zeros, whatever a pair template or an overflowing window set.
        let mut e = self.word.forward(input_ids);
        if let Some(tt) = &self.token_type {
            e += match self.family {
                Family::Roberta => tt.forward(&token_type_ids.zeros_like()),
                _ => tt.forward(token_type_ids),
            };
        }
        let e = layout.pack(&(e + self.position.forward(&positions)));
        layout.dropout(&self.layer_norm.forward(&e), self.dropout, train)
    }
}

#[derive(Debug)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_ln: nn::LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_ln: nn::LayerNorm,
    heads: i64,
    act: String,
    hidden_dropout: f64,
    attn_dropout: f64,
    /// BERT drops out the attention projection before its residual; DistilBERT does not.
    attn_out_dropout: bool,
}

impl Layer {
    fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let h = cfg.hidden_size;
        let i = cfg.intermediate_size;
        // (query, key, value, attention output, its LayerNorm, intermediate, output, its LayerNorm)
        let names: [nn::Path; 8] = match cfg.family() {
            Family::DistilBert => {
                let a = &p / "attention";
                [&a / "q_lin", &a / "k_lin", &a / "v_lin", &a / "out_lin", &p / "sa_layer_norm", &p / "ffn" / "lin1", &p / "ffn" / "lin2", &p / "output_layer_norm"]
            }
            _ => {
                let (s, o) = (&p / "attention" / "self", &p / "attention" / "output");
                [&s / "query", &s / "key", &s / "value", &o / "dense", &o / "LayerNorm", &p / "intermediate" / "dense", &p / "output" / "dense", &p / "output" / "LayerNorm"]
            }
        };
        let [q, k, v, ao, aln, inter, out, oln] = names;
        Layer {
            query: linear(q, h, h, cfg),
            key: linear(k, h, h, cfg),
            value: linear(v, h, h, cfg),
            attn_out: linear(ao, h, h, cfg),
            attn_ln: layer_norm(aln, cfg),
            intermediate: linear(inter, h, i, cfg),
            output: linear(out, i, h, cfg),
            out_ln: layer_norm(oln, cfg),
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act.clone(),
            hidden_dropout: cfg.hidden_dropout_prob,
            attn_dropout: cfg.attention_probs_dropout_prob,
            attn_out_dropout: cfg.family() != Family::DistilBert,
        }
    }

    /// `x` in `layout`; attention as the layout runs it, everything else on `x`'s rows.
    fn forward(&self, x: &Tensor, layout: &Layout, train: bool) -> Tensor {
        let ctx = layout.attention(&self.query.forward(x), &self.key.forward(x), &self.value.forward(x), self.heads, self.attn_dropout, train);
        let projected = self.attn_out.forward(&ctx);
        let projected = if self.attn_out_dropout { layout.dropout(&projected, self.hidden_dropout, train) } else { projected };
        let a = self.attn_ln.forward(&(projected + x));
        let i = activation(&self.act, &self.intermediate.forward(&a));
        self.out_ln.forward(&(layout.dropout(&self.output.forward(&i), self.hidden_dropout, train) + a))
    }
}

/// `BertModel` / `RobertaModel`: the last hidden states, and the pooled first token where the
/// family's heads use a pooler.
#[derive(Debug)]
pub struct Bert {
    embeddings: Embeddings,
    /// ELECTRA's `embeddings_project`, when its embeddings are narrower than its layers.
    project: Option<Linear>,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
}

impl Bert {
    /// Builds the encoder under `p` (the family's prefix: `bert`, `roberta`), with BERT's pooler
    /// when `pooler` (a head that reads it). RoBERTa's task models, and BERT's token and span
    /// heads, are built without one (`add_pooling_layer=False` in transformers), so a saved model
    /// holds what transformers' would and a missing pooler draws nothing from the seed's stream.
    pub fn new(p: nn::Path, cfg: &BertConfig, pooler: bool) -> Self {
        let enc = if cfg.family() == Family::DistilBert { &p / "transformer" / "layer" } else { &p / "encoder" / "layer" };
        Bert {
            embeddings: Embeddings::new(&p / "embeddings", cfg),
            project: (cfg.embedding_width() != cfg.hidden_size).then(|| linear(&p / "embeddings_project", cfg.embedding_width(), cfg.hidden_size, cfg)),
            layers: (0..cfg.num_hidden_layers).map(|i| Layer::new(&enc / i, cfg)).collect(),
            pooler: (pooler && cfg.family() == Family::Bert).then(|| linear(&p / "pooler" / "dense", cfg.hidden_size, cfg.hidden_size, cfg)),
        }
    }

    /// Last hidden states [batch, seq, hidden] of a batch in `layout` (zeros at the padding when
    /// it is packed); with `states`, every layer's input and the last output appended to it
    /// (transformers' `hidden_states`, [batch, seq, hidden] each).
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, layout: &Layout, train: bool, mut states: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut x = self.embeddings.forward(input_ids, token_type_ids, layout, train);
        if let Some(p) = &self.project {
            x = p.forward(&x);
        }
        for layer in &self.layers {
            if let Some(s) = states.as_deref_mut() {
                s.push(layout.unpack(&x));
            }
            x = layer.forward(&x, layout, train);
        }
        let last = layout.unpack(&x);
        if let Some(s) = states {
            s.push(last.shallow_clone());
        }
        last
    }

    /// The pooler's tanh(dense(first token)), for a family that has one.
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        self.pooler.as_ref().map(|p| p.forward(&hidden.select(1, 0)).tanh())
    }
}
