//! Task heads on top of the encoder. `BertForSequenceClassification` as in transformers: pooled
//! [CLS] → dropout → linear; `num_labels = 1` is regression trained with MSE, otherwise
//! cross-entropy over `num_labels` classes.
use crate::model::bert::{linear, Bert};
use crate::model::config::BertConfig;
use tch::nn::{self, Module};
use tch::{Reduction, Tensor};

#[derive(Debug)]
pub struct SequenceClassifier {
    pub bert: Bert,
    classifier: nn::Linear,
    dropout: f64,
    pub num_labels: i64,
}

impl SequenceClassifier {
    /// Creates the model under the VarStore root with HF's names (`bert.*`, `classifier.*`).
    pub fn new(root: &nn::Path, cfg: &BertConfig, num_labels: i64) -> Self {
        SequenceClassifier {
            bert: Bert::new(root / "bert", cfg),
            classifier: linear(root / "classifier", cfg.hidden_size, num_labels, cfg),
            dropout: cfg.classifier_dropout(),
            num_labels,
        }
    }

    /// Logits [batch, num_labels].
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let (_, pooled) = self.bert.forward(input_ids, token_type_ids, attention_mask, train);
        self.classifier.forward(&pooled.dropout(self.dropout, train))
    }

    /// Mean loss of `logits` against `labels` (i64 classes, or f32 scores when regressing).
    pub fn loss(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        if self.num_labels == 1 {
            logits.squeeze_dim(-1).mse_loss(&labels.to_kind(logits.kind()), Reduction::Mean)
        } else {
            logits.cross_entropy_for_logits(labels)
        }
    }
}
