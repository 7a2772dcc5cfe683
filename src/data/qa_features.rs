//! Extractive-QA features as run_qa.py builds them: `[CLS] question [SEP] context window [SEP]`,
//! contexts longer than `max_seq_length` split into windows overlapping by `doc_stride` tokens,
//! the question cut to `max_query_length` tokens, and the tokenizer's offsets kept so a predicted
//! token span maps back to the exact substring of the original context. A training window that
//! does not contain the whole answer is labelled with the CLS position (as are unanswerable
//! questions); an answer whose text is not at its `answer_start` is reported, not trained on.
use crate::data::squad::{answer_span, SquadExample};
use crate::data::tokenize::Features;
use crate::error::{Error, Result};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

#[derive(Debug, Clone, Copy)]
pub struct QaConfig {
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub max_query_length: usize,
}

/// One window of one example.
#[derive(Debug, Clone)]
pub struct QaFeature {
    pub example: usize,
    pub features: Features,
    /// Byte span in the context of each token; `None` outside the context (question, specials).
    pub offsets: Vec<Option<(usize, usize)>>,
    /// Training target (token positions); (0, 0) = CLS, "not in this window".
    pub start_position: i64,
    pub end_position: i64,
}

/// Batching reads a window's token ids only.
impl AsRef<Features> for QaFeature {
    fn as_ref(&self) -> &Features {
        &self.features
    }
}

/// Features of a split, plus how many answers were skipped because they did not match the context.
pub struct QaFeatures {
    pub features: Vec<QaFeature>,
    pub mismatched_answers: Vec<String>,
}

/// A tokenizer set up for question/context windows (truncating only the context, with stride).
pub fn window_tokenizer(base: &Tokenizer, cfg: QaConfig) -> Result<Tokenizer> {
    if cfg.doc_stride + cfg.max_query_length + 4 > cfg.max_seq_length {
        return Err(Error::Invalid(format!(
            "doc_stride ({}) + max_query_length ({}) leaves no room for the context in max_seq_length {}",
            cfg.doc_stride, cfg.max_query_length, cfg.max_seq_length
        )));
    }
    let mut tok = base.clone();
    tok.with_padding(None);
    tok.with_truncation(Some(TruncationParams {
        direction: TruncationDirection::Right,
        max_length: cfg.max_seq_length,
        strategy: TruncationStrategy::OnlySecond,
        stride: cfg.doc_stride,
    }))
    .map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tok)
}

/// The question cut to at most `max_query_length` tokens (at a token boundary of its text).
fn truncated_question<'a>(tok: &Tokenizer, question: &'a str, max_query_length: usize) -> Result<&'a str> {
    let q = question.trim_start();
    let enc = tok.encode(q, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(match enc.get_offsets().get(max_query_length.saturating_sub(1)) {
        Some(&(_, end)) if enc.len() > max_query_length => &q[..end],
        _ => q,
    })
}

/// Builds features for `examples`; `training` adds start/end labels from the first answer.
pub fn build(tok: &Tokenizer, examples: &[SquadExample], cfg: QaConfig, training: bool) -> Result<QaFeatures> {
    let mut out = QaFeatures { features: Vec::new(), mismatched_answers: Vec::new() };
    let mut question_tok = tok.clone();
    question_tok.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
    for (ei, ex) in examples.iter().enumerate() {
        let span = match (training, ex.answers.first()) {
            (true, Some(a)) => match answer_span(&ex.context, a) {
                Ok(s) => Some(s),
                Err(why) => {
                    out.mismatched_answers.push(format!("question {}: {why}", ex.id));
                    continue;
                }
            },
            _ => None,
        };
        let question = truncated_question(&question_tok, &ex.question, cfg.max_query_length)?;
        let enc = tok.encode((question, ex.context.as_str()), true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        let windows = std::iter::once(&enc).chain(enc.get_overflowing().iter());
        for w in windows {
            let seq = w.get_sequence_ids();
            let offsets: Vec<Option<(usize, usize)>> = w.get_offsets().iter().zip(&seq).map(|(&o, s)| (*s == Some(1)).then_some(o)).collect();
            let (mut start_position, mut end_position) = (0i64, 0i64);
            if let Some((start, end)) = span {
                let ctx: Vec<usize> = (0..offsets.len()).filter(|&i| offsets[i].is_some()).collect();
                if let (Some(&first), Some(&last)) = (ctx.first(), ctx.last()) {
                    let (win_start, win_end) = (offsets[first].expect("context").0, offsets[last].expect("context").1);
                    if start >= win_start && end <= win_end {
                        // First token ending after the answer start; last token starting before its end.
                        let s = ctx.iter().copied().find(|&i| offsets[i].expect("context").1 > start).unwrap_or(first);
                        let e = ctx.iter().rev().copied().find(|&i| offsets[i].expect("context").0 < end).unwrap_or(last);
                        start_position = s as i64;
                        end_position = e as i64;
                    }
                }
            }
            out.features.push(QaFeature {
                example: ei,
                features: Features {
                    input_ids: w.get_ids().iter().map(|&i| i as i64).collect(),
                    token_type_ids: w.get_type_ids().iter().map(|&i| i as i64).collect(),
                },
                offsets,
                start_position,
                end_position,
            });
        }
    }
    Ok(out)
}
