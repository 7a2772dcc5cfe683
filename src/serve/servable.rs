//! What `finetune serve` can serve: a model the model thread runs in dynamic batches, with the
//! tokenising half that request handlers run on the async workers (so the model thread spends its
//! time in the model). A sequence classifier answers each input with a label (or score); a token
//! classifier with the entities in its text.
use crate::data::tokenize::{Features, TextEncoder};
use crate::error::Result;
use crate::infer::ner::{self, EncodedText, NerModel, TextPrediction};
use crate::infer::{Classifier, Input, Prediction};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

pub trait Servable: Send + 'static {
    /// An input made ready for the model.
    type Item: Clone + Send + 'static;
    /// The answer to one input.
    type Output: Serialize + Send + 'static;
    /// Prepares inputs; shared by every handler.
    type Preparer: Send + Sync + 'static;

    fn preparer(&self) -> Self::Preparer;
    /// The items of `inputs`, or why they cannot be served (the client's error).
    fn prepare(p: &Self::Preparer, inputs: &[Input]) -> std::result::Result<Vec<Self::Item>, String>;
    /// Answers in item order; `batch_size` bounds one forward pass.
    fn run(&self, items: &[Self::Item], batch_size: usize) -> Result<Vec<Self::Output>>;
    fn metadata(&self) -> Value;
    fn model_dir(&self) -> &Path;
}

impl Servable for Classifier {
    type Item = Features;
    type Output = Prediction;
    type Preparer = TextEncoder;

    fn preparer(&self) -> TextEncoder {
        self.encoder.clone()
    }

    fn prepare(encoder: &TextEncoder, inputs: &[Input]) -> std::result::Result<Vec<Features>, String> {
        encoder.encode(inputs.iter().map(|i| (i.text.as_str(), i.text_pair.as_deref()))).map_err(|e| e.to_string())
    }

    fn run(&self, items: &[Features], batch_size: usize) -> Result<Vec<Prediction>> {
        self.predict_features(items, batch_size)
    }

    fn metadata(&self) -> Value {
        Classifier::metadata(self)
    }

    fn model_dir(&self) -> &Path {
        &self.model_dir
    }
}

impl Servable for NerModel {
    type Item = EncodedText;
    type Output = TextPrediction;
    type Preparer = ner::TextEncoder;

    fn preparer(&self) -> ner::TextEncoder {
        self.text_encoder()
    }

    fn prepare(encoder: &ner::TextEncoder, inputs: &[Input]) -> std::result::Result<Vec<EncodedText>, String> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| {
                let at = |msg: String| if inputs.len() > 1 { format!("inputs[{i}]: {msg}") } else { msg };
                if input.text_pair.is_some() {
                    return Err(at("a token classifier reads one text; `text_pair` is not used".into()));
                }
                encoder.encode(&input.text).map_err(at)
            })
            .collect()
    }

    fn run(&self, items: &[EncodedText], batch_size: usize) -> Result<Vec<TextPrediction>> {
        self.predict_encoded(items, batch_size)
    }

    fn metadata(&self) -> Value {
        NerModel::metadata(self)
    }

    fn model_dir(&self) -> &Path {
        &self.source_dir
    }
}
