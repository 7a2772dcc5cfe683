//! Reading pre-trained weights into a VarStore and writing fine-tuned models back out as Hugging
//! Face directories. `model.safetensors` is read with the safetensors crate (so a truncated or
//! corrupt file is a clear error, not a crash); `pytorch_model.bin` is the fallback. Names are
//! accepted with or without the encoder's prefix (`bert.`, `roberta.`); every tensor's shape is
//! checked against the config.
use crate::data::classify::ProblemType;
use crate::error::{Error, Result};
use crate::model::config::{BertConfig, Family};
use crate::model::heads::{QuestionAnswering, SequenceClassifier, TokenClassifier};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use crate::torch_ext;
use tch::{nn::{self, VarStore}, Kind, Tensor};

/// What loading did besides copying: variables left at their fresh initialisation, and
/// checkpoint tensors nothing used (a pre-training head, buffers).
#[derive(Debug, Default)]
pub struct LoadReport {
    pub newly_initialised: Vec<String>,
    pub unused: Vec<String>,
}

/// Whether a variable belongs to a fine-tuned model's task head (every family's names).
pub fn is_task_head(name: &str) -> bool {
    ["classifier.", "pre_classifier.", "qa_outputs.", "head."].iter().any(|p| name.starts_with(p))
}

/// Variables a base checkpoint may lack: the task head (and the pooler, as transformers allows).
fn may_be_new(name: &str) -> bool {
    is_task_head(name) || name.ends_with("pooler.dense.weight") || name.ends_with("pooler.dense.bias")
}

/// Maps a checkpoint name onto our (HF `BertFor*` / `RobertaFor*`) variable names: an encoder
/// tensor saved without its prefix (a base `BertModel`) gets `prefix.`.
fn canonical(name: &str, prefix: &str) -> String {
    let name = name.replace(".gamma", ".weight").replace(".beta", ".bias");
    // DeBERTa's context pooler sits beside the encoder, BERT's inside it; so does ModernBERT's
    // `head` (which its masked-LM checkpoints share with the task heads).
    let beside = (prefix == "deberta" && name.starts_with("pooler.")) || (prefix == "model" && name.starts_with("head."));
    let keep = beside || ["classifier.", "pre_classifier.", "qa_outputs.", "cls.", "lm_head.", "vocab_"].iter().any(|p| name.starts_with(p)) || name.starts_with(&format!("{prefix}."));
    if keep { name } else { format!("{prefix}.{name}") }
}

/// The encoder prefix of a model's variables (`bert`, `roberta`).
fn prefix_of(vs: &VarStore) -> String {
    let vars = vs.variables();
    let names = [".embeddings.word_embeddings.weight", ".embeddings.tok_embeddings.weight"];
    let word = vars.keys().find_map(|n| names.iter().find_map(|s| n.strip_suffix(s)));
    word.map_or("bert".into(), str::to_string)
}

/// The weights file of a model directory: `model.safetensors`, else `pytorch_model.bin`.
pub fn weights_file(dir: &Path) -> Result<PathBuf> {
    ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::file(dir, "no model.safetensors or pytorch_model.bin in the model directory"))
}

/// Reads every tensor of the model directory's weights file, keyed by canonical name (encoder
/// tensors under `prefix`).
pub fn read_weights(dir: &Path, prefix: &str) -> Result<(PathBuf, HashMap<String, Tensor>)> {
    let path = weights_file(dir)?;
    let tensors = if path.extension().is_some_and(|e| e == "safetensors") {
        read_safetensors(&path)?
    } else {
        Tensor::loadz_multi(&path).map_err(|e| Error::file(&path, format!("cannot read PyTorch weights: {e}")))?
    };
    Ok((path, tensors.into_iter().map(|(n, t)| (canonical(&n, prefix), t)).collect()))
}

/// Reads every tensor of a safetensors file.
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = crate::io::read(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::file(path, format!("not a valid safetensors file (truncated or corrupt?): {e:?}")))?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let kind = match view.dtype() {
                Dtype::F32 => Kind::Float,
                Dtype::F16 => Kind::Half,
                Dtype::BF16 => Kind::BFloat16,
                Dtype::F64 => Kind::Double,
                Dtype::I64 => Kind::Int64,
                Dtype::I32 => Kind::Int,
                Dtype::I8 => Kind::Int8,
                other => {
                    return Err(Error::Tensor { path: path.into(), tensor: name, msg: format!("unsupported dtype {other:?}") })
                }
            };
            let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_data_size(view.data(), &shape, kind)
                .map_err(|e| Error::Tensor { path: path.into(), tensor: name.clone(), msg: e.to_string() })?;
            Ok((name, t))
        })
        .collect()
}

/// Reads a `torch.save`d state dict: the ZIP container of PyTorch ≥ 1.6 or the legacy pickle
/// stream before it (through the pytorch-reader crate, so no Python is involved).
pub fn read_torch_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| Error::file(path, format!("not a readable torch.save file: {e}")))?;
    let mut out = Vec::new();
    for (name, t) in reader.tensors() {
        use pytorch_reader::DType;
        let kind = match t.dtype() {
            DType::F32 => Kind::Float,
            DType::F64 => Kind::Double,
            DType::F16 => Kind::Half,
            DType::BF16 => Kind::BFloat16,
            DType::I64 => Kind::Int64,
            DType::I32 => Kind::Int,
            other => return Err(Error::Tensor { path: path.into(), tensor: name.clone(), msg: format!("unsupported dtype {other:?}") }),
        };
        let bad = |e: String| Error::Tensor { path: path.into(), tensor: name.clone(), msg: e };
        let data = t.read().map_err(|e| bad(e.to_string()))?;
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(&data, &shape, kind).map_err(|e| bad(e.to_string()))?;
        out.push((name.clone(), tensor));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Copies checkpoint weights into every variable of `vs`. A variable missing from the checkpoint is
/// an error unless it may legitimately be new (`may_be_new`); a shape that disagrees with the config
/// is always an error naming the tensor.
pub fn load_into(vs: &VarStore, dir: &Path) -> Result<LoadReport> {
    let (path, weights) = read_weights(dir, &prefix_of(vs))?;
    copy_weights(vs, &path, weights, may_be_new)
}

/// Copies `weights` (read from `path`) into every variable of `vs`: a variable the weights lack is
/// an error unless `may_be_new` allows it, a shape mismatch always is; leftovers are reported.
pub fn copy_weights(vs: &VarStore, path: &Path, mut weights: HashMap<String, Tensor>, may_be_new: impl Fn(&str) -> bool) -> Result<LoadReport> {
    let path = path.to_path_buf();
    let mut report = LoadReport::default();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        match weights.remove(&name) {
            Some(w) => {
                if w.size() != var.size() {
                    return Err(Error::Tensor {
                        path: path.clone(),
                        tensor: name,
                        msg: format!("shape {:?} in the checkpoint, but the config implies {:?}", w.size(), var.size()),
                    });
                }
                tch::no_grad(|| var.copy_(&w.to_kind(var.kind())));
            }
            None if may_be_new(&name) => report.newly_initialised.push(name),
            None => {
                return Err(Error::Tensor { path: path.clone(), tensor: name, msg: "missing from the checkpoint".into() })
            }
        }
    }
    report.unused = weights.into_keys().collect();
    report.unused.sort();
    Ok(report)
}

/// Builds a `BertForSequenceClassification` with `num_labels` outputs, fills it from the checkpoint
/// in `dir` and moves it to `device`. New weights are the first draws from the caller's CPU
/// generator state (see [`init_new_weights`]), so a seed gives transformers' head on every device.
pub fn load_sequence_classifier(
    dir: &Path,
    cfg: &BertConfig,
    num_labels: i64,
    device: tch::Device,
) -> Result<(VarStore, SequenceClassifier, LoadReport)> {
    load_bert_model(dir, cfg, device, |root| SequenceClassifier::new(root, cfg, num_labels))
}

/// Builds a `BertForQuestionAnswering`, fills it from the checkpoint in `dir` and moves it to
/// `device`; the fresh `qa_outputs` is drawn as in [`load_sequence_classifier`].
pub fn load_question_answering(dir: &Path, cfg: &BertConfig, device: tch::Device) -> Result<(VarStore, QuestionAnswering, LoadReport)> {
    load_bert_model(dir, cfg, device, |root| QuestionAnswering::new(root, cfg))
}

/// Builds a `…ForTokenClassification` with `num_labels` outputs, fills it from the checkpoint in
/// `dir` and moves it to `device`; the fresh `classifier` is drawn as in [`load_sequence_classifier`].
pub fn load_token_classifier(dir: &Path, cfg: &BertConfig, num_labels: i64, device: tch::Device) -> Result<(VarStore, TokenClassifier, LoadReport)> {
    load_bert_model(dir, cfg, device, |root| TokenClassifier::new(root, cfg, num_labels))
}

fn load_bert_model<M>(dir: &Path, cfg: &BertConfig, device: tch::Device, build: impl FnOnce(&nn::Path) -> M) -> Result<(VarStore, M, LoadReport)> {
    if cfg.is_quantized() {
        if device != tch::Device::Cpu {
            return Err(Error::file(dir, format!("an int8 model (`finetune quantize`) runs on the CPU; got --device {device:?}")));
        }
        crate::model::linear::check_int8_support().map_err(|e| Error::file(dir, format!("this libtorch cannot run the int8 model: {e}")))?;
    }
    let seeded = torch_ext::rng_state(tch::Device::Cpu)?;
    let mut vs = VarStore::new(tch::Device::Cpu);
    let net = build(&vs.root());
    let report = load_into(&vs, dir)?;
    if let (true, Some(name)) = (cfg.is_quantized(), report.newly_initialised.first()) {
        return Err(Error::Tensor { path: weights_file(dir)?, tensor: name.clone(), msg: "missing from the int8 checkpoint (an int8 layer cannot be drawn fresh)".into() });
    }
    torch_ext::set_rng_state(tch::Device::Cpu, &seeded)?;
    init_new_weights(&vs, &report.newly_initialised, cfg);
    vs.set_device(device);
    Ok((vs, net, report))
}

/// Initialises the variables a checkpoint lacked as transformers' `_init_weights` does for the
/// linear layers that can be new (pooler, heads): weight ~ N(0, initializer_range) with
/// `normal_`, bias 0, in module order (which sorted names follow: `bert.pooler` before the head).
/// Building the model drew values for every layer; transformers builds on the meta device and
/// draws only these, so they come from the generator state the caller seeded.
fn init_new_weights(vs: &VarStore, new: &[String], cfg: &BertConfig) {
    let vars = vs.variables();
    let mut names: Vec<&String> = new.iter().collect();
    // Module order, which sorted names follow but for a pooler (DeBERTa's `pooler.` is built
    // before `classifier`, as BERT's `bert.pooler.` is), DistilBERT's `pre_classifier` and
    // ModernBERT's `head`.
    names.sort_by_key(|n| (!(n.contains("pooler.") || n.starts_with("head.")), !n.starts_with("pre_classifier."), n.as_str()));
    tch::no_grad(|| {
        for name in names {
            let mut v = vars[name.as_str()].shallow_clone();
            if cfg.family() == Family::ModernBert {
                crate::model::modernbert::init_new_weight(name, &mut v, cfg);
            } else if name.ends_with(".bias") {
                let _ = v.zero_();
            } else {
                let _ = v.normal_(0.0, cfg.initializer_range);
            }
        }
    });
}

/// Writes all variables as `model.safetensors` (f32, HF names, `format: pt` metadata), atomically.
pub fn save_safetensors(vs: &VarStore, path: &Path) -> Result<()> {
    let vars: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (n, t.to_kind(Kind::Float))).collect();
    write_safetensors(&vars, path)
}

/// Writes named tensors (in their own dtype) as a safetensors file, atomically. The file's bytes
/// depend only on names and values, so equal states give equal files.
pub fn write_safetensors(named: &[(String, Tensor)], path: &Path) -> Result<()> {
    let mut data: Vec<(&str, Dtype, Vec<u8>, Vec<usize>)> = Vec::with_capacity(named.len());
    for (name, t) in named {
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let dtype = match t.kind() {
            Kind::Float => Dtype::F32,
            Kind::Double => Dtype::F64,
            Kind::Half => Dtype::F16,
            Kind::BFloat16 => Dtype::BF16,
            Kind::Int64 => Dtype::I64,
            Kind::Int => Dtype::I32,
            Kind::Int8 => Dtype::I8,
            k => return Err(Error::Tensor { path: path.into(), tensor: name.clone(), msg: format!("cannot save dtype {k:?}") }),
        };
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, t.numel())?;
        data.push((name, dtype, bytes, shape));
    }
    let views = data
        .iter()
        .map(|(n, d, b, s)| TensorView::new(*d, s.clone(), b).map(|v| (*n, v)))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::file(path, format!("cannot serialise: {e:?}")))?;
    let meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = safetensors::serialize(views, &meta).map_err(|e| Error::file(path, format!("cannot serialise: {e:?}")))?;
    crate::io::write_atomic(path, &bytes)
}

/// Writes `config.json` of a fine-tuned sequence classifier: the base config plus labels and the
/// problem type, so `AutoModelForSequenceClassification` picks the same loss.
pub fn save_config(cfg: &BertConfig, labels: Option<&[String]>, problem: ProblemType, task: &str, path: &Path) -> Result<()> {
    let mut cfg = cfg.clone();
    let names: Vec<String> = match labels {
        Some(l) => l.to_vec(),
        None => vec!["LABEL_0".into()],
    };
    cfg.id2label = Some(names.iter().enumerate().map(|(i, n)| (i.to_string(), n.clone())).collect());
    cfg.label2id = Some(names.iter().enumerate().map(|(i, n)| (n.clone(), i as i64)).collect());
    cfg.problem_type = Some(problem.hf_name().into());
    cfg.extra.insert("architectures".into(), serde_json::json!([cfg.architecture("ForSequenceClassification")]));
    cfg.extra.insert("finetuning_task".into(), serde_json::json!(task));
    cfg.model_type = Some(cfg.model_type.clone().unwrap_or_else(|| "bert".into()));
    crate::io::write_json(path, &cfg.to_hf_json())
}

/// The tokenizer files a model directory may hold (each family keeps some of them).
pub const TOKENIZER_FILES: &[&str] =
    &["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "spm.model", "sentencepiece.bpe.model"];

/// Copies those of `names` that `src` holds into `dst`, atomically each (nothing when they are
/// the same folder).
pub fn copy_files(src: &Path, dst: &Path, names: &[&str]) -> Result<()> {
    for f in names {
        let from = src.join(f);
        if from.is_file() && from != dst.join(f) {
            crate::io::write_atomic(&dst.join(f), &crate::io::read(&from)?)?;
        }
    }
    Ok(())
}

/// Writes the tokenizer of a fine-tuned model directory: `tokenizer.json` with no truncation or
/// padding baked in, plus the base model's vocabulary and tokenizer configs.
pub fn save_tokenizer(tokenizer: &tokenizers::Tokenizer, source_dir: &Path, dir: &Path) -> Result<()> {
    let mut tok = tokenizer.clone();
    tok.with_truncation(None).map_err(|e| Error::Tokenizer(e.to_string()))?;
    tok.with_padding(None);
    let text = tok.to_string(true).map_err(|e| Error::Tokenizer(e.to_string()))?;
    crate::io::write_atomic(&dir.join("tokenizer.json"), text.as_bytes())?;
    copy_files(source_dir, dir, &["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"])
}
