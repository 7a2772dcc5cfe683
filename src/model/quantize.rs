//! `finetune quantize`: a fine-tuned model directory made smaller for shipping. `int8`: every
//! Linear layer of the encoder and head dynamically quantized (`model::linear`: int8 weights with
//! one float scale per output channel, activations quantized at run time), embeddings and
//! LayerNorms kept in float32; `fp16` / `bf16`: every weight stored in that type, loaded back as
//! float32. The output is a model directory like any other (weights, config.json, tokenizer).
use crate::error::{Error, Result};
use crate::model::checkpoint::{load_question_answering, load_sequence_classifier, load_token_classifier, write_safetensors};
use crate::model::config::{BertConfig, QUANT_METHOD};
use crate::model::linear::{quantize_weight, SCALE_SUFFIX};
use serde_json::{json, Value};
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum QuantDtype {
    Int8,
    Fp16,
    Bf16,
}

/// What `quantize` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QuantizeReport {
    pub dtype: QuantDtype,
    /// Linear layers stored in int8.
    pub int8_layers: usize,
    pub parameters: i64,
    /// Bytes of the Linear layers' weights before and after (int8 values plus scales).
    pub linear_weight_bytes: (i64, i64),
    /// Bytes of the weights file before and after.
    pub file_bytes: (u64, u64),
    /// Largest |w − int8 × scale| over the int8 layers, relative to the layer's largest |w|.
    pub max_relative_rounding: f64,
}

/// Writes the quantized copy of the fine-tuned model in `src` to `out`.
pub fn quantize(src: &Path, out: &Path, dtype: QuantDtype) -> Result<QuantizeReport> {
    let cfg_path = src.join("config.json");
    let cfg = BertConfig::from_file(&cfg_path)?;
    if cfg.is_quantized() {
        return Err(Error::file(&cfg_path, "this model is already int8"));
    }
    if crate::model::checkpoint::weights_file(out).is_ok() {
        return Err(Error::file(out, "already holds a model: choose another --output-dir (quantize never overwrites one)"));
    }
    let float = load_float(src, &cfg)?;
    let mut named: Vec<(String, Tensor)> = float.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut raw_cfg: Value = serde_json::from_slice(&crate::io::read(&cfg_path)?).map_err(|e| Error::Json { path: cfg_path.clone(), source: e })?;
    let mut report = QuantizeReport { dtype, int8_layers: 0, parameters: 0, linear_weight_bytes: (0, 0), file_bytes: (0, 0), max_relative_rounding: 0.0 };
    report.parameters = named.iter().map(|(_, t)| t.numel() as i64).sum();
    let tensors: Vec<(String, Tensor)> = match dtype {
        QuantDtype::Fp16 | QuantDtype::Bf16 => {
            let (kind, name) = if dtype == QuantDtype::Fp16 { (Kind::Half, "float16") } else { (Kind::BFloat16, "bfloat16") };
            raw_cfg["torch_dtype"] = json!(name);
            named.into_iter().map(|(n, t)| (n, t.to_kind(kind))).collect()
        }
        QuantDtype::Int8 => {
            let layers = int8_layer_weights(&cfg)?;
            let mut outs = Vec::with_capacity(named.len() + layers.len());
            for (name, t) in named {
                if !layers.contains(&name) {
                    outs.push((name, t));
                    continue;
                }
                let (q, scale) = quantize_weight(&t);
                let back = q.to_kind(Kind::Float) * scale.unsqueeze(1);
                let rel = ((&back - &t).abs().max() / t.abs().max().clamp_min(f64::MIN_POSITIVE)).double_value(&[]);
                report.max_relative_rounding = report.max_relative_rounding.max(rel);
                report.linear_weight_bytes.0 += t.numel() as i64 * 4;
                report.linear_weight_bytes.1 += q.numel() as i64 + scale.numel() as i64 * 4;
                report.int8_layers += 1;
                let stem = name.strip_suffix("weight").expect("int8 layer names end in weight");
                outs.push((format!("{stem}{SCALE_SUFFIX}"), scale));
                outs.push((name, q));
            }
            raw_cfg["quantization_config"] = json!({
                "quant_method": QUANT_METHOD,
                "weights": "int8, symmetric, one scale per output channel (max|w| / 127.5), every Linear of the encoder and head",
                "activations": "uint8 over each input's own range, at every call (quantized::linear_dynamic)",
                "float": "embeddings, LayerNorms and biases",
                "scale_suffix": SCALE_SUFFIX,
            });
            outs
        }
    };
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e.to_string()))?;
    let weights = out.join("model.safetensors");
    write_safetensors(&tensors, &weights)?;
    crate::io::write_json(&out.join("config.json"), &raw_cfg)?;
    // The run's configuration carries what inference reads from it (max_seq_length, a
    // multi-label threshold, the unpad setting).
    crate::model::checkpoint::copy_files(src, out, &["run_config.json"])?;
    crate::model::checkpoint::copy_files(src, out, crate::model::checkpoint::TOKENIZER_FILES)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(|e| Error::file(p, e.to_string()));
    report.file_bytes = (size(&crate::model::checkpoint::weights_file(src)?)?, size(&weights)?);
    crate::io::write_json(&out.join("quantize_results.json"), &json!({"source": src, "report": report, "environment": crate::run_info::environment(Device::Cpu)}))?;
    Ok(report)
}

/// The fine-tuned model in `dir` as its task's architecture, in float32 on the CPU.
fn load_float(dir: &Path, cfg: &BertConfig) -> Result<VarStore> {
    let arch = architecture(cfg);
    let labels = cfg.num_labels();
    let (vs, report) = if arch.ends_with("ForQuestionAnswering") {
        let (vs, _, r) = load_question_answering(dir, cfg, Device::Cpu)?;
        (vs, r)
    } else if let (true, Some(n)) = (arch.ends_with("ForTokenClassification"), labels) {
        let (vs, _, r) = load_token_classifier(dir, cfg, n, Device::Cpu)?;
        (vs, r)
    } else if let (true, Some(n)) = (arch.ends_with("ForSequenceClassification"), labels) {
        let (vs, _, r) = load_sequence_classifier(dir, cfg, n, Device::Cpu)?;
        (vs, r)
    } else {
        return Err(Error::file(dir.join("config.json"), format!("architectures {arch:?}: expected a fine-tuned …ForSequenceClassification, …ForTokenClassification or …ForQuestionAnswering model with its labels")));
    };
    if !report.newly_initialised.is_empty() {
        return Err(Error::file(dir, format!("the weights lack {:?}: not a fine-tuned model (fine-tune it first, then quantize)", report.newly_initialised)));
    }
    Ok(vs)
}

fn architecture(cfg: &BertConfig) -> String {
    cfg.extra.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Names of the weights an int8 model of this config stores in int8: the model built with
/// int8 Linear layers tells which they are (each has a scale beside its weight).
fn int8_layer_weights(cfg: &BertConfig) -> Result<Vec<String>> {
    let mut q = cfg.clone();
    q.extra.insert("quantization_config".into(), json!({"quant_method": QUANT_METHOD}));
    let vs = VarStore::new(Device::Cpu);
    let root = vs.root();
    let arch = architecture(cfg);
    let labels = cfg.num_labels().unwrap_or(1);
    if arch.ends_with("ForQuestionAnswering") {
        crate::model::heads::QuestionAnswering::new(&root, &q);
    } else if arch.ends_with("ForTokenClassification") {
        crate::model::heads::TokenClassifier::new(&root, &q, labels);
    } else {
        crate::model::heads::SequenceClassifier::new(&root, &q, labels);
    }
    let suffix = format!(".{SCALE_SUFFIX}");
    Ok(vs.variables().into_keys().filter_map(|n| n.strip_suffix(&suffix).map(|s| format!("{s}.weight"))).collect())
}
