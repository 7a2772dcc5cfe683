//! The encoder under a task head, by family: the BERT-shaped ones (`bert::Bert`: BERT, RoBERTa,
//! XLM-RoBERTa, ELECTRA, DistilBERT), DeBERTa-v2/v3 (`deberta::Deberta`) or ModernBERT
//! (`modernbert::ModernBert`).
use crate::model::bert::Bert;
use crate::model::config::{BertConfig, Family};
use crate::model::deberta::Deberta;
use crate::model::modernbert::ModernBert;
use crate::model::unpad::Layout;
use tch::{nn, Tensor};

#[derive(Debug)]
pub enum Encoder {
    /// Boxed, all: they differ much in size, and one encoder is built per model.
    Bert(Box<Bert>),
    Deberta(Box<Deberta>),
    ModernBert(Box<ModernBert>),
}

impl Encoder {
    /// Builds the family's encoder under `p` (its prefix: `bert`, `roberta`, `deberta`, ...);
    /// `pooler`: the head reads BERT's pooled first token (sequence classification).
    pub fn new(p: nn::Path, cfg: &BertConfig, pooler: bool) -> Self {
        match cfg.family() {
            Family::Deberta => Encoder::Deberta(Box::new(Deberta::new(p, cfg))),
            Family::ModernBert => Encoder::ModernBert(Box::new(ModernBert::new(p, cfg))),
            _ => Encoder::Bert(Box::new(Bert::new(p, cfg, pooler))),
        }
    }

    /// Last hidden states [batch, seq, hidden]. With `unpad` (and `unpad::set_unpad` on) a
    /// BERT-shaped encoder computes the real tokens only and returns zeros at the padding: for
    /// heads whose loss never reads a padded position. The other families always run padded.
    /// `states` receives transformers' `hidden_states` (the embeddings' output, then each layer's).
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, unpad: bool, train: bool, states: Option<&mut Vec<Tensor>>) -> Tensor {
        match self {
            Encoder::Bert(b) => b.forward(input_ids, token_type_ids, &Layout::for_mask(attention_mask, unpad), train, states),
            Encoder::Deberta(d) => d.forward(input_ids, token_type_ids, attention_mask, train, states),
            Encoder::ModernBert(m) => m.forward(input_ids, attention_mask, train, states),
        }
    }

    /// BERT's pooled first token; None for families without a pooler in the encoder.
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        match self {
            Encoder::Bert(b) => b.pool(hidden),
            Encoder::Deberta(_) | Encoder::ModernBert(_) => None,
        }
    }
}
