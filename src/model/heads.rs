//! Task heads on top of the encoder. `BertForSequenceClassification` as in transformers: pooled
//! [CLS] → dropout → linear; `RobertaForSequenceClassification` (and XLM-R's): first token →
//! dropout → dense → tanh → dropout → `out_proj`; ELECTRA's the same with GELU for tanh;
//! DistilBERT's: first token → `pre_classifier` → ReLU → dropout → `classifier`; DeBERTa's:
//! `ContextPooler` (first token → dropout → `pooler.dense` → activation) → dropout → `classifier`;
//! ModernBERT's: first token (or the mean over real tokens) → `head` (dense → activation → norm) →
//! dropout → `classifier`; each with the loss of its `problem_type`: MSE for
//! regression (`num_labels = 1`), cross-entropy over `num_labels` classes (optionally
//! class-weighted), or one sigmoid per label with binary cross-entropy for multi-label
//! classification.
use crate::data::classify::ProblemType;
use crate::model::bert::activation;
use crate::model::linear::{linear, Linear};
use crate::model::encoder::Encoder;
use crate::model::config::{BertConfig, Family};
use crate::model::dropout::dropout;
use crate::model::modernbert::PredictionHead;
use tch::nn::{self, Module};
use tch::{Reduction, Tensor};

#[derive(Debug)]
enum ClassifierHead {
    /// BERT: a linear layer on the pooler's output.
    Pooled(Linear),
    /// RoBERTa's and ELECTRA's `classifier.dense` and `classifier.out_proj` on the first token,
    /// with tanh (RoBERTa) or GELU (ELECTRA) between them.
    FirstToken { dense: Linear, out_proj: Linear, gelu: bool },
    /// DistilBERT's `pre_classifier` → ReLU → dropout → `classifier` on the first token.
    PreClassifier { pre_classifier: Linear, classifier: Linear },
    /// DeBERTa's top-level `pooler.dense` (its own dropout and activation) and `classifier`.
    ContextPooler { dense: Linear, classifier: Linear, pooler_dropout: f64, act: String },
    /// ModernBERT's `head` and `classifier` on the first token or the mean of the real ones.
    Prediction { head: PredictionHead, classifier: Linear, mean_pooling: bool },
}

#[derive(Debug)]
pub struct SequenceClassifier {
    pub encoder: Encoder,
    head: ClassifierHead,
    dropout: f64,
    pub num_labels: i64,
    pub problem: ProblemType,
    /// Per-class weights of the cross-entropy, or per-label positive weights of the BCE.
    class_weights: Option<Tensor>,
}

impl SequenceClassifier {
    /// Creates the model under the VarStore root with HF's names (`bert.*` or `roberta.*`,
    /// `classifier.*`).
    pub fn new(root: &nn::Path, cfg: &BertConfig, num_labels: i64) -> Self {
        let h = cfg.hidden_size;
        let head = match cfg.family() {
            Family::Bert => ClassifierHead::Pooled(linear(root / "classifier", h, num_labels, cfg)),
            Family::DistilBert => ClassifierHead::PreClassifier { pre_classifier: linear(root / "pre_classifier", h, h, cfg), classifier: linear(root / "classifier", h, num_labels, cfg) },
            Family::Deberta => {
                let o = cfg.deberta_options();
                ClassifierHead::ContextPooler { dense: linear(root / "pooler" / "dense", h, h, cfg), classifier: linear(root / "classifier", h, num_labels, cfg), pooler_dropout: o.pooler_dropout, act: o.pooler_hidden_act }
            }
            Family::ModernBert => ClassifierHead::Prediction {
                head: PredictionHead::new(root / "head", cfg),
                classifier: linear(root / "classifier", h, num_labels, cfg),
                mean_pooling: cfg.modernbert_options().mean_pooling,
            },
            family => ClassifierHead::FirstToken {
                dense: linear(root / "classifier" / "dense", h, h, cfg),
                out_proj: linear(root / "classifier" / "out_proj", h, num_labels, cfg),
                gelu: family == Family::Electra,
            },
        };
        SequenceClassifier {
            encoder: Encoder::new(root / cfg.prefix(), cfg, true),
            head,
            dropout: cfg.classifier_dropout(),
            num_labels,
            problem: if num_labels == 1 { ProblemType::Regression } else { ProblemType::SingleLabel },
            class_weights: None,
        }
    }

    /// Sets the problem type (and so the loss) and optional class weights (`[num_labels]`, on the
    /// model's device).
    pub fn with_problem(mut self, problem: ProblemType, class_weights: Option<Tensor>) -> Self {
        self.problem = problem;
        self.class_weights = class_weights;
        self
    }

    /// Logits [batch, num_labels].
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        self.forward_states(input_ids, token_type_ids, attention_mask, train, None)
    }

    /// [`Self::forward`], with the encoder's hidden states appended to `states`.
    pub fn forward_states(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, states: Option<&mut Vec<Tensor>>) -> Tensor {
        let hidden = self.encoder.forward(input_ids, token_type_ids, attention_mask, true, train, states);
        match &self.head {
            ClassifierHead::Pooled(classifier) => {
                let pooled = self.encoder.pool(&hidden).expect("a BERT encoder has a pooler");
                classifier.forward(&dropout(&pooled, self.dropout, train))
            }
            ClassifierHead::ContextPooler { dense, classifier, pooler_dropout, act } => {
                let x = activation(act, &dense.forward(&dropout(&hidden.select(1, 0), *pooler_dropout, train)));
                classifier.forward(&dropout(&x, self.dropout, train))
            }
            ClassifierHead::Prediction { head, classifier, mean_pooling } => {
                let pooled = if *mean_pooling {
                    let summed = (&hidden * attention_mask.unsqueeze(-1)).sum_dim_intlist(1, false, None);
                    summed / attention_mask.sum_dim_intlist(1, true, None)
                } else {
                    hidden.select(1, 0)
                };
                classifier.forward(&dropout(&head.forward(&pooled), self.dropout, train))
            }
            ClassifierHead::PreClassifier { pre_classifier, classifier } => {
                let x = pre_classifier.forward(&hidden.select(1, 0)).relu();
                classifier.forward(&dropout(&x, self.dropout, train))
            }
            ClassifierHead::FirstToken { dense, out_proj, gelu } => {
                let x = dense.forward(&dropout(&hidden.select(1, 0), self.dropout, train));
                let x = if *gelu { x.gelu("none") } else { x.tanh() };
                out_proj.forward(&dropout(&x, self.dropout, train))
            }
        }
    }

    /// Mean loss of `logits` against `labels`: i64 classes, f32 scores when regressing, f32 0/1
    /// rows for multi-label.
    pub fn loss(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        match (self.problem, &self.class_weights) {
            (ProblemType::Regression, _) => logits.squeeze_dim(-1).mse_loss(&labels.to_kind(logits.kind()), Reduction::Mean),
            (ProblemType::SingleLabel, None) => logits.cross_entropy_for_logits(labels),
            (ProblemType::SingleLabel, Some(w)) => logits.cross_entropy_loss(labels, Some(w), Reduction::Mean, -100, 0.0),
            (ProblemType::MultiLabel, w) => logits.binary_cross_entropy_with_logits(&labels.to_kind(logits.kind()), None::<&Tensor>, w.as_ref(), Reduction::Mean),
        }
    }

    /// Training loss (dropout on) of a batch laid out as `[input_ids, token_type_ids,
    /// attention_mask, labels]`, what the GLUE workload and `bench` hand the step.
    pub fn batch_loss(&self, b: &[Tensor]) -> Tensor {
        self.loss(&self.forward(&b[0], &b[1], &b[2], true), &b[3])
    }
}

/// `BertForQuestionAnswering` (and the other families'): a linear layer over every token's hidden
/// state gives start and end logits (`qa_outputs`, 2 outputs); no pooler, as in transformers; DistilBERT
/// drops out the hidden states first; ModernBERT passes them through its `head` and dropout, and
/// calls the linear layer `classifier`.
#[derive(Debug)]
pub struct QuestionAnswering {
    pub encoder: Encoder,
    head: Option<PredictionHead>,
    qa_outputs: Linear,
    /// DistilBERT's and ModernBERT's dropout on the hidden states before `qa_outputs`.
    dropout: Option<f64>,
}

impl QuestionAnswering {
    pub fn new(root: &nn::Path, cfg: &BertConfig) -> Self {
        let modern = cfg.family() == Family::ModernBert;
        QuestionAnswering {
            encoder: Encoder::new(root / cfg.prefix(), cfg, false),
            head: modern.then(|| PredictionHead::new(root / "head", cfg)),
            qa_outputs: linear(root / if modern { "classifier" } else { "qa_outputs" }, cfg.hidden_size, 2, cfg),
            dropout: cfg.qa_dropout(),
        }
    }

    /// (start, end) logits, each [batch, seq]; padding positions are left as computed (callers
    /// only read context tokens). Never unpadded: transformers' loss takes its softmax over the
    /// padding's logits too, and a run must land where run_qa's lands.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> (Tensor, Tensor) {
        self.forward_states(input_ids, token_type_ids, attention_mask, train, None)
    }

    /// [`Self::forward`], with the encoder's hidden states appended to `states`.
    pub fn forward_states(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, states: Option<&mut Vec<Tensor>>) -> (Tensor, Tensor) {
        let mut hidden = self.encoder.forward(input_ids, token_type_ids, attention_mask, false, train, states);
        if let Some(head) = &self.head {
            hidden = head.forward(&hidden);
        }
        let hidden = match self.dropout {
            Some(p) => dropout(&hidden, p, train),
            None => hidden,
        };
        let logits = self.qa_outputs.forward(&hidden);
        let parts = logits.split(1, -1);
        (parts[0].squeeze_dim(-1), parts[1].squeeze_dim(-1))
    }

    /// Mean of the start and end cross-entropies.
    pub fn loss(start_logits: &Tensor, end_logits: &Tensor, start_positions: &Tensor, end_positions: &Tensor) -> Tensor {
        (start_logits.cross_entropy_for_logits(start_positions) + end_logits.cross_entropy_for_logits(end_positions)) / 2.0
    }

    /// Training loss (dropout on) of a batch laid out as `[input_ids, token_type_ids,
    /// attention_mask, start_positions, end_positions]`.
    pub fn batch_loss(&self, b: &[Tensor]) -> Tensor {
        let (s, e) = self.forward(&b[0], &b[1], &b[2], true);
        Self::loss(&s, &e, &b[3], &b[4])
    }
}

/// `…ForTokenClassification`: dropout and a linear layer (`classifier`) over every token's hidden
/// state; ModernBERT passes the states through its `head` first. The loss is the mean
/// cross-entropy over positions whose label is not -100.
#[derive(Debug)]
pub struct TokenClassifier {
    pub encoder: Encoder,
    head: Option<PredictionHead>,
    classifier: Linear,
    dropout: f64,
    pub num_labels: i64,
}

impl TokenClassifier {
    pub fn new(root: &nn::Path, cfg: &BertConfig, num_labels: i64) -> Self {
        TokenClassifier {
            encoder: Encoder::new(root / cfg.prefix(), cfg, false),
            head: (cfg.family() == Family::ModernBert).then(|| PredictionHead::new(root / "head", cfg)),
            classifier: linear(root / "classifier", cfg.hidden_size, num_labels, cfg),
            dropout: cfg.token_classifier_dropout(),
            num_labels,
        }
    }

    /// Logits [batch, seq, num_labels] (with unpadding, those at the padding are the head's
    /// output for zero states; the loss and predictions never read them).
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        self.forward_states(input_ids, token_type_ids, attention_mask, train, None)
    }

    /// [`Self::forward`], with the encoder's hidden states appended to `states`.
    pub fn forward_states(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, states: Option<&mut Vec<Tensor>>) -> Tensor {
        let mut hidden = self.encoder.forward(input_ids, token_type_ids, attention_mask, true, train, states);
        if let Some(head) = &self.head {
            hidden = head.forward(&hidden);
        }
        self.classifier.forward(&dropout(&hidden, self.dropout, train))
    }

    /// Mean cross-entropy over the labelled positions (label ≠ -100).
    pub fn loss(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        logits.view([-1, self.num_labels]).cross_entropy_loss::<Tensor>(&labels.view([-1]), None, Reduction::Mean, -100, 0.0)
    }

    /// Training loss (dropout on) of a batch laid out as `[input_ids, token_type_ids,
    /// attention_mask, labels]`.
    pub fn batch_loss(&self, b: &[Tensor]) -> Tensor {
        self.loss(&self.forward(&b[0], &b[1], &b[2], true), &b[3])
    }
}
