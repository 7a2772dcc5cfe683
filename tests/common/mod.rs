//! Helpers shared by the integration tests: locating the cached default model and the benchmark
//! data, each skipping (with a printed reason) where it is absent.
#![allow(dead_code)]
use std::path::PathBuf;

pub mod server;

/// The default model's directory, if `finetune fetch` has put it in the HF cache.
pub fn model_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("FINETUNE_TEST_MODEL") {
        return Some(PathBuf::from(d));
    }
    match finetune::model::hub::resolve_cached(finetune::model::hub::DEFAULT_MODEL) {
        Some(d) => Some(d),
        None => {
            eprintln!("SKIP: {} is not in the HF cache (run `finetune fetch`)", finetune::model::hub::DEFAULT_MODEL);
            None
        }
    }
}

/// The GLUE root: $GLUE_DIR, else ../shared/data/glue beside the checkout.
pub fn glue_dir() -> Option<PathBuf> {
    let d = std::env::var("GLUE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/glue"));
    if d.join("RTE/train.tsv").is_file() {
        Some(d)
    } else {
        eprintln!("SKIP: GLUE data not found at {} (set GLUE_DIR)", d.display());
        None
    }
}

pub fn fixture(name: &str) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// Writes `content` to `name` inside a fresh temporary directory and returns both.
pub fn temp_file(name: &str, content: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    (dir, p)
}

/// A fine-tuned-looking classifier in `dir`: `model`'s encoder with a fresh head (seed 3),
/// `labels`, `task` as its `finetuning_task`, `model`'s tokenizer.
pub fn fine_tuned_classifier(model: &std::path::Path, dir: &std::path::Path, labels: &[&str], task: &str) {
    use finetune::data::classify::ProblemType;
    use finetune::model::{checkpoint, config::BertConfig};
    let cfg = BertConfig::from_file(&model.join("config.json")).unwrap();
    tch::manual_seed(3);
    let (vs, _, _) = checkpoint::load_sequence_classifier(model, &cfg, labels.len() as i64, tch::Device::Cpu).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    checkpoint::save_safetensors(&vs, &dir.join("model.safetensors")).unwrap();
    let names: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    checkpoint::save_config(&cfg, Some(&names), ProblemType::SingleLabel, task, &dir.join("config.json")).unwrap();
    checkpoint::copy_files(model, dir, checkpoint::TOKENIZER_FILES).unwrap();
}
