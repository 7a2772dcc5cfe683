//! Inference with a fine-tuned extractive QA model (`BertForQuestionAnswering`): load the model
//! directory, build doc-stride windows, run them in length-sorted batches, post-process into
//! answers. Used by `finetune squad` for its dev predictions and by `predict` / `squad predict`.
use crate::data::batch::collate;
use crate::data::qa_features::{self, QaConfig, QaFeature};
use crate::data::squad::SquadExample;
use crate::data::tokenize::load_tokenizer;
use crate::error::{Error, Result};
use crate::eval::qa_post::{postprocess, PostConfig, Predictions};
use crate::model::checkpoint;
use crate::model::config::BertConfig;
use crate::model::heads::QuestionAnswering;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind};

/// Start and end logits of every feature (trimmed to its length), in feature order, computed over
/// length-sorted batches with dropout off.
pub fn qa_logits(net: &QuestionAnswering, features: &[QaFeature], pad_id: i64, batch_size: usize, device: Device) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let lengths: Vec<usize> = features.iter().map(|f| f.features.input_ids.len()).collect();
    let mut start = vec![Vec::new(); features.len()];
    let mut end = vec![Vec::new(); features.len()];
    tch::no_grad(|| {
        for chunk in crate::infer::length_batches(&lengths, batch_size) {
            let b = collate(features, &chunk, pad_id, 1, device);
            let (s, e) = net.forward(&b.input_ids, &b.token_type_ids, &b.attention_mask, false);
            let (s, e) = (s.to_device(Device::Cpu).to_kind(Kind::Float), e.to_device(Device::Cpu).to_kind(Kind::Float));
            for (row, &i) in chunk.iter().enumerate() {
                let n = lengths[i] as i64;
                start[i] = Vec::<f32>::try_from(s.get(row as i64).narrow(0, 0, n)).unwrap_or_default();
                end[i] = Vec::<f32>::try_from(e.get(row as i64).narrow(0, 0, n)).unwrap_or_default();
            }
        }
    });
    (start, end)
}

/// A loaded QA model with what post-processing needs.
pub struct QaModel {
    pub vs: VarStore,
    pub net: QuestionAnswering,
    pub cfg: BertConfig,
    pub tokenizer: tokenizers::Tokenizer,
    pub pad_id: i64,
    pub source_dir: PathBuf,
}

impl QaModel {
    /// Answers for `examples`, with the official scores when the examples carry answers.
    pub fn predict(&self, examples: &[SquadExample], qa: QaConfig, post: PostConfig, batch_size: usize) -> Result<(Predictions, usize)> {
        self.cfg.check_seq_length(qa.max_seq_length, &self.source_dir.join("config.json"))?;
        let tok = qa_features::window_tokenizer(&self.tokenizer, qa)?;
        let feats = qa_features::build(&tok, examples, qa, false)?;
        let (start, end) = qa_logits(&self.net, &feats.features, self.pad_id, batch_size, self.vs.device());
        Ok((postprocess(examples, &feats.features, &start, &end, post), feats.features.len()))
    }

    /// Writes an HF-style `BertForQuestionAnswering` directory.
    pub fn save(&self, dir: &Path) -> Result<()> {
        checkpoint::save_safetensors(&self.vs, &dir.join("model.safetensors"))?;
        let mut cfg = self.cfg.clone();
        cfg.extra.insert("architectures".into(), json!([cfg.architecture("ForQuestionAnswering")]));
        cfg.model_type = Some(cfg.model_type.clone().unwrap_or_else(|| "bert".into()));
        crate::io::write_json(&dir.join("config.json"), &cfg.to_hf_json())?;
        checkpoint::save_tokenizer(&self.tokenizer, &self.source_dir, dir)
    }
}

/// Loads a model directory as a QA model (a fresh `qa_outputs` if the checkpoint has none).
pub fn load_model(dir: &Path, device: Device) -> Result<(QaModel, Vec<String>)> {
    let cfg = BertConfig::from_file(&dir.join("config.json"))?;
    let (vs, net, report) = checkpoint::load_question_answering(dir, &cfg, device)?;
    let tokenizer = load_tokenizer(dir)?;
    let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0) as i64;
    Ok((QaModel { vs, net, cfg, tokenizer, pad_id, source_dir: dir.into() }, report.newly_initialised))
}

/// Loads a model directory that must already hold a trained QA head.
pub fn load_trained(dir: &Path, device: Device) -> Result<QaModel> {
    let (model, new) = load_model(dir, device)?;
    if !new.is_empty() {
        return Err(Error::file(dir, format!("not a fine-tuned QA model: it lacks {new:?}")));
    }
    Ok(model)
}

/// Whether a model directory holds a `…ForQuestionAnswering` (BERT, RoBERTa, XLM-RoBERTa).
pub fn is_qa_model(dir: &Path) -> bool {
    crate::infer::has_architecture(dir, "ForQuestionAnswering")
}

/// Windows and post-processing as the model was trained and evaluated (its run_config.json),
/// else run_qa.py's defaults; `max_seq_length` overrides the trained value.
pub fn trained_settings(dir: &Path, max_seq_length: Option<usize>) -> (QaConfig, PostConfig) {
    let trained: Value = std::fs::read(dir.join("run_config.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
    let arg = |k: &str, d: u64| trained["args"][k].as_u64().unwrap_or(d) as usize;
    let qa = QaConfig {
        max_seq_length: max_seq_length.unwrap_or(arg("max_seq_length", 384)),
        doc_stride: arg("doc_stride", 128),
        max_query_length: arg("max_query_length", 64),
    };
    let post = PostConfig {
        n_best_size: arg("n_best_size", 20),
        max_answer_length: arg("max_answer_length", 30),
        version_2: trained["args"]["version_2_with_negative"].as_bool().unwrap_or(false),
        null_score_diff_threshold: trained["args"]["null_score_diff_threshold"].as_f64().unwrap_or(0.0),
    };
    (qa, post)
}

/// A question about a context, with no gold answer.
pub fn question(id: String, context: String, question: String) -> SquadExample {
    SquadExample { id, title: String::new(), context, question, answers: vec![], is_impossible: false, plausible_answers: vec![] }
}

/// Reads JSONL `{"question", "context", "id"?}` lines (ids default to the line's position).
pub fn read_questions(path: &Path) -> Result<Vec<SquadExample>> {
    let text = String::from_utf8(crate::io::read(path)?).map_err(|_| Error::file(path, "not UTF-8"))?;
    let mut examples = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |m: String| Error::data(path, i + 1, m);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let field = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string).ok_or_else(|| bad(format!("expected a string field `{k}`")));
        let id = v.get("id").map_or_else(|| examples.len().to_string(), |x| x.as_str().map_or_else(|| x.to_string(), str::to_string));
        examples.push(question(id, field("context")?, field("question")?));
    }
    Ok(examples)
}

/// The best answer to `id`: text, character offsets, score (start + end logit) and probability.
pub fn best_answer(p: &Predictions, id: &str) -> Value {
    let best = &p.nbest[id][0];
    json!({
        "id": id, "answer": p.predictions[id], "offsets": best["offsets"],
        "score": best["start_logit"].as_f64().unwrap_or(0.0) + best["end_logit"].as_f64().unwrap_or(0.0),
        "probability": best["probability"],
    })
}
