//! Model inputs for token classification, as run_ner.py's `tokenize_and_align_labels` builds them:
//! the words are tokenised as pre-split words (`is_split_into_words`), truncated to
//! `max_seq_length`; a word's label goes on its first sub-token and -100 (ignored by the loss and
//! the metrics) on the others and on special tokens, or, with `label_all_tokens`, every sub-token
//! carries it (a `B-` label turned into its `I-` on the later ones).
use crate::data::conll::Sentence;
use crate::data::tokenize::Features;
use crate::error::{Error, Result};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

/// The label id ignored by the loss and the metrics.
pub const IGNORE: i64 = -100;

/// One sentence's inputs, the label of each position, and the word each position starts (the
/// positions scored, with the word's index).
#[derive(Debug, Clone)]
pub struct NerFeature {
    pub features: Features,
    pub labels: Vec<i64>,
    /// (position, word index) of each word's first sub-token that survived truncation.
    pub word_starts: Vec<(usize, usize)>,
    /// The word of each position (None for special tokens).
    pub word_ids: Vec<Option<u32>>,
}

impl AsRef<Features> for NerFeature {
    fn as_ref(&self) -> &Features {
        &self.features
    }
}

/// The features of a set of sentences, and how many were cut by `max_seq_length`.
pub struct NerFeatures {
    pub features: Vec<NerFeature>,
    pub truncated: usize,
}

/// The tokenizer with run_ner's truncation (right, at `max_seq_length` incl. special tokens).
pub fn tokenizer(base: &Tokenizer, max_seq_length: usize) -> Result<Tokenizer> {
    let mut tok = base.clone();
    tok.with_padding(None);
    tok.with_truncation(Some(TruncationParams { direction: TruncationDirection::Right, max_length: max_seq_length, strategy: TruncationStrategy::LongestFirst, stride: 0 }))
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tok)
}

/// For each label id, the id of its `I-` form when it is a `B-` label whose `I-` exists, else itself.
fn b_to_i(labels: &[String]) -> Vec<i64> {
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| l.strip_prefix("B-").and_then(|k| labels.iter().position(|x| *x == format!("I-{k}"))).unwrap_or(i) as i64)
        .collect()
}

/// Tokenises `sentences` (already truncating `tok`) and aligns their tags with `labels`; a tag not
/// among them is an error (callers check files first, naming lines). Sentences without tags
/// (prediction) get -100 everywhere but keep their word starts.
pub fn build(tok: &Tokenizer, sentences: &[Sentence], labels: &[String], label_all_tokens: bool) -> Result<NerFeatures> {
    let words: Vec<Vec<&str>> = sentences.iter().map(|s| s.tokens.iter().map(String::as_str).collect()).collect();
    let encodings = tok.encode_batch(words.iter().map(|w| w.as_slice()).collect::<Vec<_>>(), true).map_err(|e| Error::Tokenizer(e.to_string()))?;
    let to_i = b_to_i(labels);
    let mut out = NerFeatures { features: Vec::with_capacity(sentences.len()), truncated: 0 };
    for (s, e) in sentences.iter().zip(encodings) {
        let word_ids = e.get_word_ids().to_vec();
        let mut labels_out = Vec::with_capacity(word_ids.len());
        let mut word_starts = Vec::new();
        let mut prev = None;
        for (pos, w) in word_ids.iter().enumerate() {
            let label = match *w {
                None => IGNORE,
                Some(w) => {
                    let tag = s.tags.get(w as usize);
                    let id = match tag {
                        Some(t) => labels.iter().position(|l| l == t).ok_or_else(|| Error::Invalid(format!("tag `{t}` is not a label of the model")))? as i64,
                        None => IGNORE,
                    };
                    if prev != Some(w) {
                        word_starts.push((pos, w as usize));
                        id
                    } else if label_all_tokens && id != IGNORE {
                        to_i[id as usize]
                    } else {
                        IGNORE
                    }
                }
            };
            labels_out.push(label);
            prev = *w;
        }
        if !e.get_overflowing().is_empty() {
            out.truncated += 1;
        }
        out.features.push(NerFeature {
            features: Features { input_ids: e.get_ids().iter().map(|&i| i as i64).collect(), token_type_ids: e.get_type_ids().iter().map(|&i| i as i64).collect() },
            labels: labels_out,
            word_starts,
            word_ids,
        });
    }
    Ok(out)
}
