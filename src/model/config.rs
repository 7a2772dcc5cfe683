//! `BertConfig`, deserialised straight from a Hugging Face `config.json` of the BERT-shaped encoder
//! families (`model_type` `bert`, `roberta`, `xlm-roberta`, `electra`, `distilbert`: the same
//! layers; RoBERTa's positions offset past the padding index, ELECTRA's embeddings narrower than
//! its layers and projected up, DistilBERT without token types or the dropout after attention,
//! each with its own classification head; DeBERTa-v2/v3 and ModernBERT, whose own fields are read
//! from the kept keys by `deberta_options` / `modernbert_options`). DistilBERT's own key names (`dim`, `n_layers`, ...) are
//! read into the common fields and written back on save. Unknown keys are kept, so a
//! saved fine-tuned model carries every field of its base model's config through unchanged.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    pub intermediate_size: i64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default)]
    pub classifier_dropout: Option<f64>,
    /// ELECTRA: the width of the embeddings, projected to `hidden_size` when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<i64>,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: i64,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: i64,
    #[serde(default = "default_init_range")]
    pub initializer_range: f64,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: i64,
    #[serde(default = "default_pos_type")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub model_type: Option<String>,
    /// Set on fine-tuned classifiers: label names by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_pos() -> i64 {
    512
}
fn default_type_vocab() -> i64 {
    2
}
fn default_init_range() -> f64 {
    0.02
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_pos_type() -> String {
    "absolute".into()
}

/// `quantization_config.quant_method` of the int8 models `finetune quantize` writes.
pub const QUANT_METHOD: &str = "finetune_dynamic_int8";

/// The encoder families `BertConfig` describes, by `model_type`.
pub const MODEL_TYPES: &[&str] = &["bert", "roberta", "xlm-roberta", "electra", "distilbert", "deberta-v2", "modernbert"];

/// The ModernBERT fields of `config.json` (kept in `BertConfig::extra`: its names differ from
/// BERT's), with `ModernBertConfig`'s defaults.
#[derive(Debug, Clone)]
pub struct ModernBertOptions {
    pub hidden_activation: String,
    pub norm_eps: f64,
    pub norm_bias: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub classifier_bias: bool,
    pub embedding_dropout: f64,
    pub attention_dropout: f64,
    pub mlp_dropout: f64,
    pub classifier_dropout: f64,
    pub global_rope_theta: f64,
    pub local_rope_theta: f64,
    /// Every n-th layer (from layer 0) attends globally, the others within `local_attention`.
    pub global_attn_every_n_layers: i64,
    /// The local window's width: a token sees `local_attention / 2` tokens each side.
    pub local_attention: i64,
    /// `cls` (the first token) or `mean` (over real tokens) under the classifier head.
    pub mean_pooling: bool,
    pub classifier_activation: String,
    pub initializer_cutoff_factor: f64,
}

/// The DeBERTa-v2/v3 fields of `config.json` (kept in `BertConfig::extra`), with transformers'
/// defaults.
#[derive(Debug, Clone)]
pub struct DebertaOptions {
    pub relative_attention: bool,
    /// Relative distances are bucketed beyond half this (no buckets when ≤ 0).
    pub position_buckets: i64,
    pub max_relative_positions: i64,
    /// Rows of the relative-position table a layer reads on each side (`att_span`).
    pub span: i64,
    pub norm_rel_ebd: bool,
    pub share_att_key: bool,
    pub c2p: bool,
    pub p2c: bool,
    pub position_biased_input: bool,
    pub pooler_hidden_act: String,
    pub pooler_dropout: f64,
    pub cls_dropout: Option<f64>,
}

/// `pos_att_type`: `"p2c|c2p"` or `["p2c", "c2p"]`, lower-cased.
fn pos_att_types(v: Option<&serde_json::Value>) -> Vec<String> {
    match v {
        Some(serde_json::Value::String(s)) => s.to_lowercase().split('|').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|t| t.as_str()).map(|t| t.trim().to_lowercase()).collect(),
        _ => Vec::new(),
    }
}

/// DistilBERT's `config.json` names for the common fields.
const DISTILBERT_KEYS: &[(&str, &str)] = &[
    ("dim", "hidden_size"),
    ("n_layers", "num_hidden_layers"),
    ("n_heads", "num_attention_heads"),
    ("hidden_dim", "intermediate_size"),
    ("dropout", "hidden_dropout_prob"),
    ("attention_dropout", "attention_probs_dropout_prob"),
    ("activation", "hidden_act"),
    ("seq_classif_dropout", "classifier_dropout"),
];

/// How a family's layers differ from BERT's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Positions 0.., a pooler under the sequence-classification head.
    Bert,
    /// Positions counted from `pad_token_id + 1` over non-padding tokens, no pooler, a
    /// dense-tanh-projection head on `<s>` (RoBERTa, XLM-RoBERTa).
    Roberta,
    /// Embeddings of `embedding_size` projected to `hidden_size`, no pooler, a dense-GELU-projection
    /// head on `[CLS]`.
    Electra,
    /// No token types, no dropout after the attention projection, layers named `q_lin`, ...;
    /// a `pre_classifier`-ReLU head, dropout before the QA head.
    DistilBert,
    /// DeBERTa-v2/v3: disentangled attention over relative positions (`model::deberta`), a
    /// context pooler under the classifier.
    Deberta,
    /// ModernBERT: rotary positions, GeGLU, pre-norm layers alternating global and sliding-window
    /// attention (`model::modernbert`), a dense-activation-norm head under the classifier and QA
    /// outputs.
    ModernBert,
}

/// BERT fields `BertConfig` fills with defaults that ModernBERT's config does not have (it names its
/// own): left out of a saved ModernBERT config.
const NOT_MODERNBERT_KEYS: &[&str] =
    &["hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "layer_norm_eps", "type_vocab_size", "position_embedding_type"];

const ACTIVATIONS: &[&str] = &["gelu", "gelu_new", "gelu_pytorch_tanh", "relu"];

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = crate::io::read(path)?;
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: path.into(), source: e })?;
        if v["model_type"] == "distilbert" {
            if v["sinusoidal_pos_embds"] == true {
                return Err(Error::file(path, "sinusoidal_pos_embds: true (fixed sinusoidal positions) is not supported; expected learned position embeddings"));
            }
            if let Some(o) = v.as_object_mut() {
                // DistilBertConfig's default, which its heads use rather than `dropout`.
                o.entry("seq_classif_dropout").or_insert(serde_json::json!(0.2));
                for (theirs, ours) in DISTILBERT_KEYS {
                    if let Some(x) = o.remove(*theirs) {
                        o.insert(ours.to_string(), x);
                    }
                }
            }
        }
        let cfg: BertConfig = serde_json::from_value(v).map_err(|e| Error::Json { path: path.into(), source: e })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// The `config.json` transformers reads for this family (DistilBERT under its own key names).
    pub fn to_hf_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a config serialises");
        if let (Family::ModernBert, Some(o)) = (self.family(), v.as_object_mut()) {
            for k in NOT_MODERNBERT_KEYS {
                o.remove(*k);
            }
        }
        if self.family() == Family::DistilBert {
            if let Some(o) = v.as_object_mut() {
                for (theirs, ours) in DISTILBERT_KEYS {
                    if let Some(x) = o.remove(*ours) {
                        o.insert(theirs.to_string(), x);
                    }
                }
            }
        }
        v
    }

    /// DeBERTa's options, with transformers' defaults for what the config leaves out.
    pub fn deberta_options(&self) -> DebertaOptions {
        let x = &self.extra;
        let bool_of = |k: &str, d: bool| x.get(k).and_then(|v| v.as_bool()).unwrap_or(d);
        let int_of = |k: &str, d: i64| x.get(k).and_then(|v| v.as_i64()).unwrap_or(d);
        let types = pos_att_types(x.get("pos_att_type"));
        let max_rel = int_of("max_relative_positions", -1);
        let max_relative_positions = if max_rel < 1 { self.max_position_embeddings } else { max_rel };
        let position_buckets = int_of("position_buckets", -1);
        DebertaOptions {
            relative_attention: bool_of("relative_attention", false),
            position_buckets,
            max_relative_positions,
            span: if position_buckets > 0 { position_buckets } else { max_relative_positions },
            norm_rel_ebd: x.get("norm_rel_ebd").and_then(|v| v.as_str()).is_some_and(|s| s.to_lowercase().split('|').any(|t| t.trim() == "layer_norm")),
            share_att_key: bool_of("share_att_key", false),
            c2p: types.iter().any(|t| t == "c2p"),
            p2c: types.iter().any(|t| t == "p2c"),
            position_biased_input: bool_of("position_biased_input", true),
            pooler_hidden_act: x.get("pooler_hidden_act").and_then(|v| v.as_str()).unwrap_or("gelu").to_string(),
            pooler_dropout: x.get("pooler_dropout").and_then(|v| v.as_f64()).unwrap_or(0.0),
            cls_dropout: x.get("cls_dropout").and_then(|v| v.as_f64()),
        }
    }

    /// ModernBERT's options, with transformers' defaults for what the config leaves out.
    pub fn modernbert_options(&self) -> ModernBertOptions {
        let x = &self.extra;
        let bool_of = |k: &str| x.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
        let float_of = |k: &str, d: f64| x.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
        let str_of = |k: &str, d: &str| x.get(k).and_then(|v| v.as_str()).unwrap_or(d).to_string();
        let global_rope_theta = float_of("global_rope_theta", 160000.0);
        ModernBertOptions {
            hidden_activation: str_of("hidden_activation", "gelu"),
            norm_eps: float_of("norm_eps", 1e-5),
            norm_bias: bool_of("norm_bias"),
            attention_bias: bool_of("attention_bias"),
            mlp_bias: bool_of("mlp_bias"),
            classifier_bias: bool_of("classifier_bias"),
            embedding_dropout: float_of("embedding_dropout", 0.0),
            attention_dropout: float_of("attention_dropout", 0.0),
            mlp_dropout: float_of("mlp_dropout", 0.0),
            classifier_dropout: self.classifier_dropout.unwrap_or(0.0),
            global_rope_theta,
            // transformers falls back to the global theta when the local one is null.
            local_rope_theta: float_of("local_rope_theta", if x.get("local_rope_theta").is_some_and(|v| v.is_null()) { global_rope_theta } else { 10000.0 }),
            global_attn_every_n_layers: x.get("global_attn_every_n_layers").and_then(|v| v.as_i64()).unwrap_or(3),
            local_attention: x.get("local_attention").and_then(|v| v.as_i64()).unwrap_or(128),
            mean_pooling: str_of("classifier_pooling", "cls") == "mean",
            classifier_activation: str_of("classifier_activation", "gelu"),
            initializer_cutoff_factor: x.get("initializer_cutoff_factor").and_then(|v| v.as_f64()).unwrap_or(2.0),
        }
    }

    /// ModernBERT's options checked: what this implementation lacks is an error naming the field.
    fn check_modernbert(&self) -> std::result::Result<(), String> {
        let x = &self.extra;
        let o = self.modernbert_options();
        for (name, act) in [("hidden_activation", &o.hidden_activation), ("classifier_activation", &o.classifier_activation)] {
            if !ACTIVATIONS.contains(&act.as_str()) {
                return Err(format!("{name} `{act}` is not supported; expected one of {}", ACTIVATIONS.join(", ")));
            }
        }
        if let Some(p) = x.get("classifier_pooling").and_then(|v| v.as_str()).filter(|p| !matches!(*p, "cls" | "mean")) {
            return Err(format!("classifier_pooling `{p}` is not supported; expected cls or mean"));
        }
        if x.get("rope_scaling").is_some_and(|v| !v.is_null()) {
            return Err("rope_scaling is not supported; expected the default rotary embedding (rope_scaling null)".into());
        }
        for (name, p) in [("embedding_dropout", o.embedding_dropout), ("attention_dropout", o.attention_dropout), ("mlp_dropout", o.mlp_dropout)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{name} is {p}; expected a probability in [0, 1)"));
            }
        }
        if o.global_attn_every_n_layers < 1 || o.local_attention < 2 {
            return Err(format!("global_attn_every_n_layers {} / local_attention {}: expected at least 1 / 2", o.global_attn_every_n_layers, o.local_attention));
        }
        for (name, v) in [("norm_eps", o.norm_eps), ("global_rope_theta", o.global_rope_theta), ("local_rope_theta", o.local_rope_theta), ("initializer_cutoff_factor", o.initializer_cutoff_factor)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} is {v}; expected a positive number"));
            }
        }
        Ok(())
    }

    /// What `deberta_options` would read leniently, checked: the options this implementation
    /// does not have are errors naming the field.
    fn check_deberta(&self) -> std::result::Result<(), String> {
        let x = &self.extra;
        if let Some(t) = pos_att_types(x.get("pos_att_type")).iter().find(|t| !matches!(t.as_str(), "c2p" | "p2c" | "none")) {
            return Err(format!("pos_att_type `{t}` is not supported; expected c2p and/or p2c"));
        }
        if x.get("conv_kernel_size").and_then(|v| v.as_i64()).is_some_and(|k| k > 0) {
            return Err("conv_kernel_size > 0 (DeBERTa's convolution layer) is not supported".into());
        }
        if x.get("attention_head_size").and_then(|v| v.as_i64()).is_some_and(|d| d * self.num_attention_heads != self.hidden_size) {
            return Err("attention_head_size × num_attention_heads must equal hidden_size".into());
        }
        if x.get("pooler_hidden_size").and_then(|v| v.as_i64()).is_some_and(|d| d != self.hidden_size) {
            return Err("pooler_hidden_size must equal hidden_size".into());
        }
        let o = self.deberta_options();
        if !matches!(o.pooler_hidden_act.as_str(), "gelu" | "tanh" | "relu") {
            return Err(format!("pooler_hidden_act `{}` is not supported; expected gelu, tanh or relu", o.pooler_hidden_act));
        }
        for (name, p) in [("pooler_dropout", Some(o.pooler_dropout)), ("cls_dropout", o.cls_dropout)] {
            if let Some(p) = p.filter(|p| !(0.0..1.0).contains(p)) {
                return Err(format!("{name} is {p}; expected a probability in [0, 1)"));
            }
        }
        if o.relative_attention && o.position_buckets > 0 && (o.position_buckets < 4 || o.max_relative_positions - 1 <= o.position_buckets / 2) {
            return Err(format!("position_buckets {} does not fit max_relative_positions {}: expected 4 ≤ buckets < 2 × (max − 1)", o.position_buckets, o.max_relative_positions));
        }
        Ok(())
    }

    /// The dropout before the QA outputs: DistilBERT's `qa_dropout` (0.1 by default), ModernBERT's
    /// `classifier_dropout`; none elsewhere.
    pub fn qa_dropout(&self) -> Option<f64> {
        match self.family() {
            Family::DistilBert => Some(self.extra.get("qa_dropout").and_then(|x| x.as_f64()).unwrap_or(0.1)),
            Family::ModernBert => Some(self.modernbert_options().classifier_dropout),
            _ => None,
        }
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |msg: String| Err(Error::file(path, msg));
        // Other architectures would load silently wrong: refuse them.
        if let Some(t) = self.model_type.as_deref().filter(|t| !MODEL_TYPES.contains(t)) {
            return bad(format!("model_type `{t}` is not supported; expected one of {}", MODEL_TYPES.join(", ")));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            // DeBERTa-v3 has no token types at all.
            ("type_vocab_size", self.type_vocab_size + (self.family() == Family::Deberta) as i64),
            ("embedding_size", self.embedding_size.unwrap_or(1)),
        ] {
            if v < 1 {
                return bad(format!("{name} is {v}; expected a positive number"));
            }
        }
        if let Some(q) = self.extra.get("quantization_config") {
            if q.get("quant_method").and_then(|m| m.as_str()) != Some(QUANT_METHOD) {
                return bad(format!("quantization_config {q} is not supported; expected quant_method `{QUANT_METHOD}` (a model `finetune quantize` wrote)"));
            }
        }
        if !(0..self.vocab_size).contains(&self.pad_token_id) {
            return bad(format!("pad_token_id {} is outside the vocabulary (vocab_size {})", self.pad_token_id, self.vocab_size));
        }
        for (name, p) in [
            ("hidden_dropout_prob", Some(self.hidden_dropout_prob)),
            ("attention_probs_dropout_prob", Some(self.attention_probs_dropout_prob)),
            ("classifier_dropout", self.classifier_dropout),
        ] {
            if let Some(p) = p.filter(|p| !(0.0..1.0).contains(p)) {
                return bad(format!("{name} is {p}; expected a probability in [0, 1)"));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad(format!("layer_norm_eps is {}; expected a small positive number", self.layer_norm_eps));
        }
        if !(self.initializer_range.is_finite() && self.initializer_range >= 0.0) {
            return bad(format!("initializer_range is {}; expected a non-negative number", self.initializer_range));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !ACTIVATIONS.contains(&self.hidden_act.as_str()) {
            return bad(format!("hidden_act `{}` is not supported; expected one of {}", self.hidden_act, ACTIVATIONS.join(", ")));
        }
        match self.family() {
            Family::Deberta => self.check_deberta().or_else(bad)?,
            Family::ModernBert => self.check_modernbert().or_else(bad)?,
            _ => {}
        }
        if self.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type `{}` is not supported; expected `absolute`",
                self.position_embedding_type
            ));
        }
        Ok(())
    }

    pub fn family(&self) -> Family {
        match self.model_type.as_deref() {
            Some("roberta" | "xlm-roberta") => Family::Roberta,
            Some("electra") => Family::Electra,
            Some("distilbert") => Family::DistilBert,
            Some("deberta-v2") => Family::Deberta,
            Some("modernbert") => Family::ModernBert,
            _ => Family::Bert,
        }
    }

    /// The encoder's name in checkpoints (`bert.…`, `roberta.…`; XLM-RoBERTa uses `roberta`).
    pub fn prefix(&self) -> &'static str {
        match self.family() {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::Electra => "electra",
            Family::DistilBert => "distilbert",
            Family::Deberta => "deberta",
            Family::ModernBert => "model",
        }
    }

    /// transformers' class name for `task` (`ForSequenceClassification`, ...): `BertFor…`,
    /// `RobertaFor…`, `XLMRobertaFor…`.
    pub fn architecture(&self, task: &str) -> String {
        let family = match self.model_type.as_deref() {
            Some("roberta") => "Roberta",
            Some("xlm-roberta") => "XLMRoberta",
            Some("electra") => "Electra",
            Some("distilbert") => "DistilBert",
            Some("deberta-v2") => "DebertaV2",
            Some("modernbert") => "ModernBert",
            _ => "Bert",
        };
        format!("{family}{task}")
    }

    /// Position embeddings a sequence cannot use: RoBERTa's start after the padding index.
    pub fn position_offset(&self) -> i64 {
        match self.family() {
            Family::Bert | Family::Electra | Family::DistilBert | Family::Deberta | Family::ModernBert => 0,
            Family::Roberta => self.pad_token_id + 1,
        }
    }

    /// Refuses a `max_seq_length` the position embeddings cannot cover (the forward pass would
    /// index past them).
    pub fn check_seq_length(&self, max_seq_length: usize, path: &Path) -> Result<()> {
        crate::data::tokenize::check_min_seq_length(max_seq_length).map_err(Error::Invalid)?;
        let usable = self.max_position_embeddings - self.position_offset();
        if max_seq_length as i64 > usable {
            return Err(Error::file(
                path,
                format!("max_seq_length {max_seq_length} does not fit this model: it has {usable} positions (max_position_embeddings {}{})", self.max_position_embeddings, if self.position_offset() > 0 { format!(" less the {} RoBERTa reserves", self.position_offset()) } else { String::new() }),
            ));
        }
        Ok(())
    }

    /// The width of the embeddings (ELECTRA's `embedding_size`, else `hidden_size`).
    pub fn embedding_width(&self) -> i64 {
        match self.family() {
            Family::Electra => self.embedding_size.unwrap_or(self.hidden_size),
            _ => self.hidden_size,
        }
    }

    /// The classifier's dropout: `classifier_dropout` if set, else `hidden_dropout_prob` (as HF does).
    pub fn classifier_dropout(&self) -> f64 {
        if self.family() == Family::Deberta {
            // DeBERTa's head reads `cls_dropout` instead.
            return self.deberta_options().cls_dropout.unwrap_or(self.hidden_dropout_prob);
        }
        if self.family() == Family::ModernBert {
            return self.modernbert_options().classifier_dropout;
        }
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// The dropout of the token-classification head: `classifier_dropout` (else
    /// `hidden_dropout_prob`) for BERT, RoBERTa and ELECTRA; DistilBERT's and DeBERTa's read
    /// `dropout` / `hidden_dropout_prob` alone; ModernBERT's its `classifier_dropout`.
    pub fn token_classifier_dropout(&self) -> f64 {
        match self.family() {
            Family::Bert | Family::Roberta | Family::Electra => self.classifier_dropout.unwrap_or(self.hidden_dropout_prob),
            Family::DistilBert | Family::Deberta => self.hidden_dropout_prob,
            Family::ModernBert => self.modernbert_options().classifier_dropout,
        }
    }

    /// Whether the Linear layers are int8 (`finetune quantize`; `model::linear`).
    pub fn is_quantized(&self) -> bool {
        self.extra.contains_key("quantization_config")
    }

    /// Training commands refuse an int8 model: gradients do not flow through int8 weights.
    pub fn refuse_quantized(&self, path: &Path) -> Result<()> {
        if self.is_quantized() {
            return Err(Error::file(path, "this model's Linear weights are int8 (`finetune quantize`), which serve inference only: nothing back-propagates through them. Train the float model it was quantized from, then quantize the result"));
        }
        Ok(())
    }

    /// The label names by id of a fine-tuned config (`None` without `id2label`); its ids must be
    /// 0..num_labels-1. `path` names the config in errors.
    pub fn labels_by_id(&self, path: &Path) -> Result<Option<Vec<String>>> {
        let Some(map) = &self.id2label else { return Ok(None) };
        let mut labels: Vec<(i64, String)> = map
            .iter()
            .map(|(k, v)| k.parse::<i64>().map(|k| (k, v.clone())).map_err(|_| Error::file(path, format!("id2label key `{k}` is not an integer"))))
            .collect::<Result<_>>()?;
        labels.sort();
        if labels.iter().enumerate().any(|(i, (k, _))| *k != i as i64) {
            return Err(Error::file(path, "id2label ids must be 0..num_labels-1"));
        }
        Ok(Some(labels.into_iter().map(|(_, n)| n).collect()))
    }

    /// `num_labels` recorded in a fine-tuned config (from `id2label`), if any.
    pub fn num_labels(&self) -> Option<i64> {
        self.id2label.as_ref().map(|m| m.len() as i64)
    }
}
