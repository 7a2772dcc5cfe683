//! DeBERTa-v2/v3 checkpoints ship a SentencePiece `spm.model` and no `tokenizer.json`; this turns
//! one into the fast tokenizer transformers' slow→fast converter (`DebertaV2Converter`) builds, so
//! ids and offsets are the ones transformers computes, without Python at run time: the Unigram
//! pieces and scores, the model's precompiled normaliser between `Strip` and the collapsing of
//! runs of spaces (after `Lowercase` when `do_lower_case`), `Metaspace` (after isolating
//! punctuation when `split_by_punct`), `[CLS] A [SEP] (B [SEP])`, and the added tokens: the
//! model's control and user-defined pieces, then the special tokens transformers' tokenizer class
//! adds (`[MASK]` gets the next free id).
//!
//! The protobuf messages are declared here with prost's derive, only the fields we read, rather
//! than taken from a crate that generates all of sentencepiece_model.proto at build time with a
//! protobuf compiler of its own: four small messages do not justify that build.
use crate::error::{Error, Result};
use prost::Message;
use serde_json::{Map, Value};
use std::path::Path;
use tokenizers::{
    decoders::DecoderWrapper,
    models::unigram::Unigram,
    normalizers::{Lowercase, Precompiled, Replace, Sequence as Normalizers, Strip},
    pre_tokenizers::{
        metaspace::{Metaspace, PrependScheme},
        punctuation::Punctuation,
        sequence::Sequence as PreTokenizers,
    },
    processors::template::TemplateProcessing,
    AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

/// The file name DeBERTa-v2/v3 repositories use for their SentencePiece model.
pub const MODEL_FILE: &str = "spm.model";

#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<Piece>,
    #[prost(message, optional, tag = "2")]
    trainer_spec: Option<TrainerSpec>,
    #[prost(message, optional, tag = "3")]
    normalizer_spec: Option<NormalizerSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct Piece {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    /// NORMAL = 1 (the default), UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6.
    #[prost(int32, optional, tag = "3")]
    kind: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct TrainerSpec {
    /// UNIGRAM = 1 (the default), BPE = 2, WORD = 3, CHAR = 4.
    #[prost(int32, optional, tag = "3")]
    model_type: Option<i32>,
    #[prost(bool, optional, tag = "35")]
    byte_fallback: Option<bool>,
    #[prost(int32, optional, tag = "40")]
    unk_id: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct NormalizerSpec {
    #[prost(bytes = "vec", optional, tag = "2")]
    precompiled_charsmap: Option<Vec<u8>>,
}

const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
/// DebertaV2Tokenizer's special tokens, in transformers' attribute order (bos, eos, unk, sep, pad,
/// cls, mask), which is the order it adds the missing ones in.
const SPECIALS: [(&str, &str); 7] = [
    ("bos_token", "[CLS]"),
    ("eos_token", "[SEP]"),
    ("unk_token", "[UNK]"),
    ("sep_token", "[SEP]"),
    ("pad_token", "[PAD]"),
    ("cls_token", "[CLS]"),
    ("mask_token", "[MASK]"),
];

/// The fast tokenizer of a model directory holding `spm.model` (and optionally
/// `tokenizer_config.json`, `special_tokens_map.json`), as `DebertaV2TokenizerFast` converts it.
pub fn deberta_v2_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let path = dir.join(MODEL_FILE);
    let bad = |msg: String| Error::file(&path, msg);
    let proto = ModelProto::decode(crate::io::read(&path)?.as_slice())
        .map_err(|e| bad(format!("not a SentencePiece model (protobuf ModelProto): {e}")))?;
    let trainer = proto.trainer_spec.clone().unwrap_or_default();
    if trainer.model_type.unwrap_or(1) != 1 {
        return Err(bad(format!(
            "SentencePiece model type {} is not supported; DeBERTa-v2/v3 use Unigram (1)",
            trainer.model_type.unwrap_or(1)
        )));
    }
    if trainer.byte_fallback == Some(true) {
        // transformers' converter warns and drops it; silently different ids would be worse.
        return Err(bad("byte_fallback SentencePiece models are not supported".into()));
    }
    let vocab: Vec<(String, f64)> =
        proto.pieces.iter().map(|p| (p.piece.clone().unwrap_or_default(), p.score.unwrap_or(0.0) as f64)).collect();
    let unk = usize::try_from(trainer.unk_id.unwrap_or(0)).ok().filter(|&u| u < vocab.len());
    let unk = unk.ok_or_else(|| bad(format!("unk_id {:?} is not a piece of the model", trainer.unk_id)))?;
    let model = Unigram::from(vocab, Some(unk), false).map_err(|e| bad(format!("invalid Unigram model: {e}")))?;
    let mut tok = Tokenizer::new(model);

    let config = crate::io::read_json_object(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    let flag = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(false);
    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if flag("do_lower_case") {
        normalizers.push(Lowercase.into());
    }
    normalizers.push(Strip::new(true, true).into());
    if let Some(map) = proto.normalizer_spec.as_ref().and_then(|n| n.precompiled_charsmap.as_ref()).filter(|m| !m.is_empty()) {
        let p = Precompiled::from(map).map_err(|e| bad(format!("invalid precompiled_charsmap: {e}")))?;
        normalizers.push(p.into());
    }
    let spaces = Replace::new(tokenizers::normalizers::replace::ReplacePattern::Regex(" {2,}".into()), " ")
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    normalizers.push(spaces.into());
    tok.with_normalizer(Some(Normalizers::new(normalizers)));

    let metaspace = Metaspace::new('▁', PrependScheme::Always, true);
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if flag("split_by_punct") {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre.push(metaspace.clone().into());
    tok.with_pre_tokenizer(Some(PreTokenizers::new(pre)));
    tok.with_decoder(Some(DecoderWrapper::Metaspace(metaspace)));

    // The converter's added tokens: control pieces are special, user-defined ones are not.
    let pieces: Vec<AddedToken> = proto
        .pieces
        .iter()
        .filter(|p| matches!(p.kind, Some(CONTROL | USER_DEFINED)))
        .map(|p| AddedToken::from(p.piece.clone().unwrap_or_default(), p.kind == Some(CONTROL)).normalized(false))
        .collect();
    tok.add_tokens(&pieces);
    tok.add_tokens(&class_added_tokens(dir, &config, &pieces)?);

    let id = |t: &str| tok.token_to_id(t).ok_or_else(|| bad(format!("the tokenizer lacks the special token {t}")));
    let special = |key: &str, default: &str| special_content(&config, key).unwrap_or_else(|| default.to_string());
    let (cls, sep) = (special("cls_token", "[CLS]"), special("sep_token", "[SEP]"));
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .special_tokens(vec![(cls.clone(), id(&cls)?), (sep.clone(), id(&sep)?)])
        .build()
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    tok.with_post_processor(Some(template));
    Ok(tok)
}

/// What `PreTrainedTokenizerFast` adds after the conversion: `tokenizer_config.json`'s
/// `added_tokens_decoder` (by id) when present, else `added_tokens.json`; then every special token
/// not yet among them, special_tokens_map.json's value over tokenizer_config.json's over the class
/// default — each skipped when the converter's `pieces` have it already. DebertaV2Tokenizer makes
/// its unknown token a normalised one.
fn class_added_tokens(dir: &Path, config: &Map<String, Value>, pieces: &[AddedToken]) -> Result<Vec<AddedToken>> {
    let mut added: Vec<(u64, AddedToken)> = Vec::new();
    if let Some(Value::Object(decoder)) = config.get("added_tokens_decoder") {
        for (id, t) in decoder {
            let bool_of = |k: &str, default: bool| t.get(k).and_then(Value::as_bool).unwrap_or(default);
            let content = t.get("content").and_then(Value::as_str).unwrap_or_default();
            let special = bool_of("special", false);
            let token = AddedToken::from(content, special)
                .lstrip(bool_of("lstrip", false))
                .rstrip(bool_of("rstrip", false))
                .single_word(bool_of("single_word", false))
                .normalized(bool_of("normalized", !special));
            added.push((id.parse().unwrap_or(u64::MAX), token));
        }
    } else if let Some(legacy) = crate::io::read_json_object(&dir.join("added_tokens.json"))? {
        let specials: Vec<String> = SPECIALS.iter().map(|(k, d)| special_content(config, k).unwrap_or((*d).into())).collect();
        for (content, id) in legacy {
            let special = specials.contains(&content);
            added.push((id.as_u64().unwrap_or(u64::MAX), AddedToken::from(content, special)));
        }
    }
    added.sort_by_key(|(id, _)| *id);
    let map = crate::io::read_json_object(&dir.join("special_tokens_map.json"))?.unwrap_or_default();
    let mut tokens: Vec<AddedToken> = added.into_iter().map(|(_, t)| t).filter(|t| !pieces.contains(t)).collect();
    for (key, default) in SPECIALS {
        let content = special_content(&map, key).or_else(|| special_content(config, key)).unwrap_or(default.into());
        if !tokens.iter().chain(pieces).any(|t| t.content == content) {
            tokens.push(AddedToken::from(content, true).normalized(key == "unk_token"));
        }
    }
    Ok(tokens)
}

/// A special token's text, written as a string or as an AddedToken object.
fn special_content(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        v => v.get("content").and_then(Value::as_str).map(str::to_string),
    }
}
