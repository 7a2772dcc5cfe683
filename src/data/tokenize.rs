//! Loading a checkpoint's tokenizer and turning text (pairs) into model inputs. `tokenizer.json` is
//! preferred; then a SentencePiece `spm.model` (DeBERTa-v2/v3, converted in `spm`), then a `vocab.txt`
//! WordPiece tokenizer (honouring `do_lower_case`). Any
//! truncation/padding baked into tokenizer.json is removed: we truncate pairs `longest_first` to
//! `max_seq_length` ourselves and pad per batch.
use crate::error::{Error, Result};
use std::path::Path;
use tokenizers::{
    normalizers::BertNormalizer, pre_tokenizers::bert::BertPreTokenizer, processors::bert::BertProcessing,
    decoders::wordpiece::WordPiece as WordPieceDecoder, models::wordpiece::WordPiece, EncodeInput, Tokenizer,
    TruncationDirection, TruncationParams, TruncationStrategy,
};

/// A text-pair tokenizer fixed to one `max_seq_length`.
#[derive(Clone)]
pub struct TextEncoder {
    tokenizer: Tokenizer,
    pub pad_id: i64,
}

/// One tokenised example, before padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub input_ids: Vec<i64>,
    pub token_type_ids: Vec<i64>,
}

impl AsRef<Features> for Features {
    fn as_ref(&self) -> &Features {
        self
    }
}

/// Loads the tokenizer of a model directory, stripped of baked-in truncation and padding.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let json = dir.join("tokenizer.json");
    let mut tok = if json.is_file() {
        Tokenizer::from_file(&json).map_err(|e| Error::file(&json, format!("cannot load tokenizer: {e}")))?
    } else if dir.join(super::spm::MODEL_FILE).is_file() {
        super::spm::deberta_v2_tokenizer(dir)?
    } else {
        wordpiece_from_vocab(dir)?
    };
    tok.with_padding(None);
    tok.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok(tok)
}

fn wordpiece_from_vocab(dir: &Path) -> Result<Tokenizer> {
    let vocab = dir.join("vocab.txt");
    if !vocab.is_file() {
        return Err(Error::file(dir, "no tokenizer.json, spm.model or vocab.txt; expected one of them in the model directory"));
    }
    let lowercase = do_lower_case(dir)?;
    let vocab_s = vocab.to_string_lossy().to_string();
    let model = WordPiece::from_file(&vocab_s)
        .build()
        .map_err(|e| Error::file(&vocab, format!("cannot read WordPiece vocabulary: {e}")))?;
    let mut tok = Tokenizer::new(model);
    let id = |t: &str| {
        tok.token_to_id(t).ok_or_else(|| Error::file(&vocab, format!("vocabulary lacks the special token {t}")))
    };
    let (sep, cls) = (id("[SEP]")?, id("[CLS]")?);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
    tok.with_decoder(Some(WordPieceDecoder::default()));
    Ok(tok)
}

/// `do_lower_case` from tokenizer_config.json; BERT's default (true) when the file or key is absent.
fn do_lower_case(dir: &Path) -> Result<bool> {
    let config = crate::io::read_json_object(&dir.join("tokenizer_config.json"))?.unwrap_or_default();
    Ok(config.get("do_lower_case").and_then(|b| b.as_bool()).unwrap_or(true))
}

/// Refuses a `max_seq_length` below 3: the start and end tokens and one of the text. The one
/// rule behind the flag parsers, the model check and the encoder; the message without a prefix,
/// for clap.
pub fn check_min_seq_length(max_seq_length: usize) -> std::result::Result<(), String> {
    if max_seq_length < 3 {
        return Err(format!("max_seq_length must be at least 3 (the start and end tokens and one of the text), got {max_seq_length}"));
    }
    Ok(())
}

impl TextEncoder {
    pub fn new(mut tokenizer: Tokenizer, max_seq_length: usize) -> Result<Self> {
        check_min_seq_length(max_seq_length).map_err(Error::Invalid)?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        // WordPiece vocabularies call it [PAD], byte-level BPE and SentencePiece ones <pad>.
        let pad_id = ["[PAD]", "<pad>"].iter().find_map(|t| tokenizer.token_to_id(t)).unwrap_or(0) as i64;
        Ok(TextEncoder { tokenizer, pad_id })
    }

    /// Tokenises single texts or pairs, `[CLS] a [SEP] (b [SEP])`, truncated longest-first.
    pub fn encode<'a>(&self, texts: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Result<Vec<Features>> {
        let inputs: Vec<EncodeInput> = texts
            .into_iter()
            .map(|(a, b)| match b {
                Some(b) => (a, b).into(),
                None => a.into(),
            })
            .collect();
        let encs = self.tokenizer.encode_batch(inputs, true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(encs
            .into_iter()
            .map(|e| Features {
                input_ids: e.get_ids().iter().map(|&i| i as i64).collect(),
                token_type_ids: e.get_type_ids().iter().map(|&i| i as i64).collect(),
            })
            .collect())
    }

    /// The tokenizer without our truncation, as it should be saved next to a fine-tuned model.
    pub fn tokenizer_for_saving(&self) -> Result<Tokenizer> {
        let mut t = self.tokenizer.clone();
        t.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(t)
    }
}
