//! Checkpoint loading and saving on a tiny random BERT: round trip, `bert.` prefix handling, and
//! the errors for truncated files, missing tensors and shapes that disagree with the config.
mod common;
use finetune::model::{checkpoint, config::BertConfig, heads::SequenceClassifier};
use std::path::Path;
use tch::{nn::VarStore, Device, Tensor};

fn tiny_config(layers: i64, intermediate: i64) -> BertConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": layers, "num_attention_heads": 2,
        "intermediate_size": intermediate, "max_position_embeddings": 32, "model_type": "bert"
    }))
    .unwrap()
}

/// Writes a random tiny model (config + weights) into `dir`.
fn write_tiny(dir: &Path, cfg: &BertConfig) -> VarStore {
    let vs = VarStore::new(Device::Cpu);
    let _ = SequenceClassifier::new(&vs.root(), cfg, 2);
    checkpoint::save_safetensors(&vs, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(cfg).unwrap()).unwrap();
    vs
}

fn load(dir: &Path, cfg: &BertConfig) -> finetune::Result<(VarStore, checkpoint::LoadReport)> {
    let (vs, _, r) = checkpoint::load_sequence_classifier(dir, cfg, 2, Device::Cpu)?;
    Ok((vs, r))
}

#[test]
fn save_then_load_round_trips_every_tensor() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(2, 16);
    let saved = write_tiny(d.path(), &cfg);
    let (loaded, report) = load(d.path(), &cfg).unwrap();
    assert!(report.newly_initialised.is_empty() && report.unused.is_empty(), "{report:?}");
    let a = saved.variables();
    for (name, t) in loaded.variables() {
        assert!(t.equal(&a[&name]), "{name} differs after the round trip");
    }
}

#[test]
fn base_checkpoint_names_without_prefix_load_and_head_is_new() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(1, 16);
    let src = write_tiny(d.path(), &cfg);
    // Re-save the encoder alone under BertModel's names (no `bert.` prefix, no classifier).
    let tensors: Vec<(String, Tensor)> = src
        .variables()
        .into_iter()
        .filter_map(|(n, t)| n.strip_prefix("bert.").map(|s| (s.to_string(), t)))
        .collect();
    Tensor::write_safetensors(&tensors, d.path().join("model.safetensors")).unwrap();
    let (vs, report) = load(d.path(), &cfg).unwrap();
    assert_eq!(report.newly_initialised, vec!["classifier.bias", "classifier.weight"]);
    let name = "bert.encoder.layer.0.attention.self.query.weight";
    assert!(vs.variables()[name].equal(&src.variables()[name]));
    // New head: bias zero, weights ~ N(0, 0.02).
    assert_eq!(vs.variables()["classifier.bias"].abs().sum(tch::Kind::Float).double_value(&[]), 0.0);
    let std = vs.variables()["classifier.weight"].std(true).double_value(&[]);
    assert!(std > 0.005 && std < 0.05, "classifier weight std {std}");
}

#[test]
fn shape_mismatch_names_the_tensor() {
    let d = tempfile::tempdir().unwrap();
    write_tiny(d.path(), &tiny_config(1, 16));
    let e = load(d.path(), &tiny_config(1, 12)).unwrap_err().to_string();
    assert!(e.contains("bert.encoder.layer.0.intermediate.dense.bias") && e.contains("[16]") && e.contains("[12]"), "{e}");
}

#[test]
fn missing_tensor_names_the_tensor() {
    let d = tempfile::tempdir().unwrap();
    write_tiny(d.path(), &tiny_config(1, 16));
    let e = load(d.path(), &tiny_config(2, 16)).unwrap_err().to_string();
    assert!(e.contains("bert.encoder.layer.1.") && e.contains("missing from the checkpoint"), "{e}");
}

#[test]
fn truncated_safetensors_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let cfg = tiny_config(1, 16);
    write_tiny(d.path(), &cfg);
    let p = d.path().join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(d.path(), &cfg).unwrap_err().to_string();
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors file"), "{e}");
}

#[test]
fn missing_weights_and_bad_config_are_named() {
    let d = tempfile::tempdir().unwrap();
    let e = checkpoint::read_weights(d.path(), "bert").unwrap_err().to_string();
    assert!(e.contains("no model.safetensors or pytorch_model.bin"), "{e}");
    let p = d.path().join("config.json");
    std::fs::write(&p, br#"{"model_type": "gpt2", "vocab_size": 5, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8}"#).unwrap();
    let e = BertConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("model_type `gpt2` is not supported"), "{e}");
    std::fs::write(&p, br#"{"hidden_size": 8}"#).unwrap();
    let e = BertConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("config.json") && e.contains("missing field"), "{e}");
}
