//! Inference with a token-classification model (`…ForTokenClassification`): per-position logits
//! over length-sorted batches; the tag of each word (its first sub-token's); run_ner's scoring
//! (the positions that carry a label); and entities in raw text with character offsets, type and
//! score, grouped as transformers' token-classification pipeline does with
//! `aggregation_strategy="simple"`.
use crate::data::batch::collate;
use crate::data::conll::Sentence;
use crate::data::ner_features::{NerFeature, IGNORE};
use crate::data::tokenize::{load_tokenizer, Features};
use crate::error::{Error, Result};
use crate::eval::seqeval;
use crate::model::checkpoint;
use crate::model::config::BertConfig;
use crate::model::heads::TokenClassifier;
use serde_json::json;
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// A loaded token-classification model and its label names.
pub struct NerModel {
    pub vs: VarStore,
    pub net: TokenClassifier,
    pub cfg: BertConfig,
    pub tokenizer: tokenizers::Tokenizer,
    pub labels: Vec<String>,
    pub pad_id: i64,
    pub source_dir: PathBuf,
}

/// What the model finds in one text: its entities, and the logits of every token (special ones
/// included) as transformers computes them, for checking.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TextPrediction {
    pub entities: Vec<Entity>,
    pub logits: Vec<Vec<f32>>,
}

/// A token with its most probable label, before grouping.
struct Tagged {
    label: String,
    score: f64,
    token: String,
    start: usize,
    end: usize,
}

/// An entity found in a text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Entity {
    pub entity_group: String,
    pub score: f64,
    pub word: String,
    /// Character offsets into the text.
    pub start: usize,
    pub end: usize,
}

/// Label names by id from a fine-tuned config's `id2label`.
fn config_labels(cfg: &BertConfig, dir: &Path) -> Result<Vec<String>> {
    cfg.labels_by_id(&dir.join("config.json"))?.ok_or_else(|| Error::file(dir.join("config.json"), "no id2label: not a fine-tuned token classifier"))
}

impl NerModel {
    /// Loads `dir` with a fresh head of `labels` (training), or, with `None`, a trained model and
    /// its own labels.
    pub fn load(dir: &Path, labels: Option<Vec<String>>, device: Device) -> Result<(NerModel, Vec<String>)> {
        let cfg = BertConfig::from_file(&dir.join("config.json"))?;
        let trained = labels.is_none();
        let other_heads = [("ForSequenceClassification", "a sequence classifier"), ("ForQuestionAnswering", "a question-answering model")];
        for (suffix, what) in other_heads.into_iter().filter(|_| trained) {
            if crate::infer::has_architecture(dir, suffix) {
                return Err(Error::file(dir.join("config.json"), format!("{what} (*{suffix}), not a token classifier: fine-tune one with `finetune ner`")));
            }
        }
        let labels = match labels {
            Some(l) => l,
            None => config_labels(&cfg, dir)?,
        };
        let (vs, net, report) = checkpoint::load_token_classifier(dir, &cfg, labels.len() as i64, device)?;
        if trained && !report.newly_initialised.is_empty() {
            return Err(Error::file(dir, format!("not a fine-tuned token classifier: it lacks {:?}", report.newly_initialised)));
        }
        let tokenizer = load_tokenizer(dir)?;
        let pad_id = ["[PAD]", "<pad>"].iter().find_map(|t| tokenizer.token_to_id(t)).unwrap_or(0) as i64;
        Ok((NerModel { vs, net, cfg, tokenizer, labels, pad_id, source_dir: dir.into() }, report.newly_initialised))
    }

    /// Logits [len, num_labels] of every feature, dropout off.
    pub fn logits(&self, features: &[impl AsRef<crate::data::tokenize::Features>], batch_size: usize) -> Vec<Tensor> {
        let lengths: Vec<usize> = features.iter().map(|f| f.as_ref().input_ids.len()).collect();
        let mut out: Vec<Option<Tensor>> = (0..features.len()).map(|_| None).collect();
        tch::no_grad(|| {
            for chunk in crate::infer::length_batches(&lengths, batch_size) {
                let b = collate(features, &chunk, self.pad_id, 1, self.vs.device());
                let logits = self.net.forward(&b.input_ids, &b.token_type_ids, &b.attention_mask, false).to_device(Device::Cpu).to_kind(Kind::Float);
                for (row, &i) in chunk.iter().enumerate() {
                    out[i] = Some(logits.get(row as i64).narrow(0, 0, lengths[i] as i64));
                }
            }
        });
        out.into_iter().map(|t| t.expect("every feature is in a batch")).collect()
    }

    /// Each sentence's predicted tag per word from its features' `logits` (the first sub-token's
    /// argmax; `O` for words cut by truncation or without sub-tokens).
    pub fn word_tags(&self, sentences: &[Sentence], features: &[NerFeature], logits: &[Tensor]) -> Vec<Vec<String>> {
        sentences
            .iter()
            .zip(features)
            .zip(logits)
            .map(|((s, f), l)| {
                let best = Vec::<i64>::try_from(l.argmax(-1, false)).unwrap_or_default();
                let mut tags = vec!["O".to_string(); s.tokens.len()];
                for &(pos, w) in &f.word_starts {
                    tags[w] = self.labels[best[pos] as usize].clone();
                }
                tags
            })
            .collect()
    }

    /// run_ner's evaluation of the features' `logits`: gold and predicted tags of the positions
    /// that carry a label, sentence by sentence, scored as seqeval does; with the mean loss over
    /// those positions.
    pub fn evaluate(&self, features: &[NerFeature], logits: &[Tensor]) -> (seqeval::Scores, f64) {
        let (mut gold, mut pred) = (Vec::new(), Vec::new());
        let (mut loss_sum, mut n) = (0.0, 0usize);
        for (f, l) in features.iter().zip(logits) {
            let best = Vec::<i64>::try_from(l.argmax(-1, false)).unwrap_or_default();
            let keep: Vec<usize> = (0..f.labels.len()).filter(|&i| f.labels[i] != IGNORE).collect();
            gold.push(keep.iter().map(|&i| self.labels[f.labels[i] as usize].clone()).collect::<Vec<_>>());
            pred.push(keep.iter().map(|&i| self.labels[best[i] as usize].clone()).collect::<Vec<_>>());
            let labels = Tensor::from_slice(&f.labels);
            loss_sum += l.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Sum, IGNORE, 0.0).double_value(&[]);
            n += keep.len();
        }
        (seqeval::score(&gold, &pred), loss_sum / n.max(1) as f64)
    }

    /// The tokenizer side of prediction, for callers that tokenise away from the model (the
    /// server's request handlers).
    pub fn text_encoder(&self) -> TextEncoder {
        TextEncoder { tokenizer: self.tokenizer.clone(), max_tokens: self.max_tokens() }
    }

    /// The longest text, in tokens, the model's positions take.
    pub fn max_tokens(&self) -> usize {
        (self.cfg.max_position_embeddings - self.cfg.position_offset()).max(0) as usize
    }

    /// Entities in each text, as transformers' pipeline with `aggregation_strategy="simple"` finds
    /// them: each non-special token tagged with its most probable label (softmax score),
    /// neighbouring tokens of one type merged unless the later one is `B-`, `O` dropped; a
    /// group's score is its tokens' mean and its word the tokens decoded. Texts run in
    /// length-sorted batches of `batch_size`.
    pub fn predict_encoded(&self, texts: &[EncodedText], batch_size: usize) -> Result<Vec<TextPrediction>> {
        let features: Vec<Features> = texts
            .iter()
            .map(|t| Features { input_ids: t.encoding.get_ids().iter().map(|&i| i as i64).collect(), token_type_ids: t.encoding.get_type_ids().iter().map(|&i| i as i64).collect() })
            .collect();
        texts.iter().zip(self.logits(&features, batch_size)).map(|(t, l)| self.entities(t, &l)).collect()
    }

    fn entities(&self, text: &EncodedText, logits: &Tensor) -> Result<TextPrediction> {
        let enc = &text.encoding;
        let probs = logits.softmax(-1, Kind::Float);
        let best = Vec::<i64>::try_from(probs.argmax(-1, false))?;
        let char_at = |byte: usize| text.text[..byte].chars().count();
        let mut tokens: Vec<Tagged> = Vec::new();
        for (i, &special) in enc.get_special_tokens_mask().iter().enumerate() {
            if special == 1 {
                continue;
            }
            let (s, e) = enc.get_offsets()[i];
            let label = self.labels[best[i] as usize].clone();
            tokens.push(Tagged { label, score: probs.double_value(&[i as i64, best[i]]), token: enc.get_tokens()[i].clone(), start: char_at(s), end: char_at(e) });
        }
        let tag = |l: &str| match l.split_once('-') {
            Some(("B", t)) => ('B', t.to_string()),
            Some(("I", t)) => ('I', t.to_string()),
            _ => ('I', l.to_string()),
        };
        let mut groups: Vec<Vec<&Tagged>> = Vec::new();
        for t in &tokens {
            let (bi, kind) = tag(&t.label);
            match groups.last_mut() {
                Some(g) if tag(&g.last().expect("groups are never empty").label).1 == kind && bi != 'B' => g.push(t),
                _ => groups.push(vec![t]),
            }
        }
        let decoder = self.tokenizer.get_decoder();
        let mut out = Vec::new();
        for g in groups {
            let kind = g[0].label.split_once('-').map_or(g[0].label.as_str(), |(_, t)| t).to_string();
            if kind == "O" {
                continue;
            }
            let words: Vec<String> = g.iter().map(|t| t.token.clone()).collect();
            let word = match decoder {
                Some(d) => tokenizers::Decoder::decode(d, words).map_err(|e| Error::Tokenizer(e.to_string()))?,
                None => words.join(" "),
            };
            let score = g.iter().map(|t| t.score).sum::<f64>() / g.len() as f64;
            out.push(Entity { entity_group: kind, score, word, start: g[0].start, end: g[g.len() - 1].end });
        }
        Ok(TextPrediction { entities: out, logits: Vec::<Vec<f32>>::try_from(logits)? })
    }

    /// What `/metadata` reports: the model directory's name, never its path.
    pub fn metadata(&self) -> serde_json::Value {
        json!({
            "model": self.source_dir.file_name().map(|n| n.to_string_lossy()),
            "task": "ner",
            "labels": self.labels,
            "max_tokens": self.max_tokens(),
            "device": format!("{:?}", self.vs.device()),
            "finetune_version": env!("CARGO_PKG_VERSION"),
        })
    }

    /// Writes an HF `…ForTokenClassification` directory (labels in config.json).
    pub fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save_safetensors(&self.vs, &dir.join("model.safetensors"))?;
        let mut cfg = self.cfg.clone();
        cfg.id2label = Some(self.labels.iter().enumerate().map(|(i, n)| (i.to_string(), n.clone())).collect());
        cfg.label2id = Some(self.labels.iter().enumerate().map(|(i, n)| (n.clone(), i as i64)).collect());
        cfg.problem_type = None;
        cfg.extra.insert("architectures".into(), json!([cfg.architecture("ForTokenClassification")]));
        cfg.extra.insert("finetuning_task".into(), json!("ner"));
        cfg.model_type = Some(cfg.model_type.clone().unwrap_or_else(|| "bert".into()));
        crate::io::write_json(&dir.join("config.json"), &cfg.to_hf_json())?;
        checkpoint::save_tokenizer(&self.tokenizer, &self.source_dir, dir)
    }
}

/// A text tokenised for a token classifier, kept with its offsets.
#[derive(Debug, Clone)]
pub struct EncodedText {
    text: String,
    encoding: tokenizers::Encoding,
}

/// Tokenises raw text as the pipeline does (special tokens, offsets, no truncation), refusing a
/// text longer than the model's positions: cutting it would silently drop its later entities.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: tokenizers::Tokenizer,
    max_tokens: usize,
}

impl TextEncoder {
    /// The text encoded, or what is wrong with it (the caller says which input it is).
    pub fn encode(&self, text: &str) -> std::result::Result<EncodedText, String> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| format!("cannot tokenise the text: {e}"))?;
        if encoding.len() > self.max_tokens {
            return Err(format!("the text is {} tokens long; this model takes at most {} (split it into sentences or paragraphs)", encoding.len(), self.max_tokens));
        }
        Ok(EncodedText { text: text.to_string(), encoding })
    }
}

/// Whether a model directory holds a `…ForTokenClassification`.
pub fn is_token_classifier(dir: &Path) -> bool {
    crate::infer::has_architecture(dir, "ForTokenClassification")
}
