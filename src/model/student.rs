//! The initial student of `finetune distill --student-layers K`: a checkpoint with K of a source
//! model's transformer layers (the teacher's pre-trained base, or the fine-tuned teacher itself),
//! its embeddings and everything outside the layer stack unchanged, the layers renumbered
//! 0..K-1. DistilBERT initialised its student this way (one layer in two, from the teacher), and
//! found a random initialisation 3.7 GLUE points worse.
use crate::error::{Error, Result};
use crate::model::checkpoint::{copy_files, is_task_head, read_weights, write_safetensors, TOKENIZER_FILES};
use crate::model::config::BertConfig;
use std::path::{Path, PathBuf};

/// DistilBERT's choice generalised: K layers evenly spaced from the first, `i * N / K`
/// (12 → 6: 0, 2, 4, 6, 8, 10; 6 → 3: 0, 2, 4).
pub fn default_layer_map(teacher_layers: usize, student_layers: usize) -> Vec<usize> {
    (0..student_layers).map(|i| i * teacher_layers / student_layers).collect()
}

/// The layer a tensor name belongs to: the number after a `layer` / `layers` component
/// (`bert.encoder.layer.3.…`, `distilbert.transformer.layer.3.…`, `model.layers.3.…`), and the
/// name's parts before and after it.
fn layer_of(name: &str) -> Option<(usize, String, String)> {
    let parts: Vec<&str> = name.split('.').collect();
    (1..parts.len()).find_map(|j| {
        let n = parts[j].parse::<usize>().ok().filter(|_| matches!(parts[j - 1], "layer" | "layers"))?;
        Some((n, parts[..j].join("."), parts[j + 1..].join(".")))
    })
}

/// Writes the student's model directory to `out`: `source`'s config with `num_hidden_layers`
/// = `layers.len()`, its weights with layer `layers[i]` as layer `i` (the others dropped), its
/// tokenizer. `source`'s task head, if it has one, is kept only with `keep_head` (a student
/// initialised from the fine-tuned teacher starts from the teacher's head too).
pub fn make_student(source: &Path, layers: &[usize], keep_head: bool, out: &Path) -> Result<PathBuf> {
    let cfg_path = source.join("config.json");
    let mut cfg = BertConfig::from_file(&cfg_path)?;
    let n = cfg.num_hidden_layers as usize;
    if layers.is_empty() || layers.iter().any(|&l| l >= n) || layers.windows(2).any(|w| w[0] >= w[1]) {
        return Err(Error::Invalid(format!("layer map {layers:?}: expected increasing layer numbers below the source's {n} layers ({})", cfg_path.display())));
    }
    let (path, weights) = read_weights(source, cfg.prefix())?;
    let mut kept = Vec::new();
    for (name, t) in weights {
        match layer_of(&name) {
            Some((l, before, after)) => {
                if let Some(i) = layers.iter().position(|&m| m == l) {
                    kept.push((format!("{before}.{i}.{after}"), t));
                }
            }
            None if !keep_head && is_task_head(&name) => {}
            None => kept.push((name, t)),
        }
    }
    if !kept.iter().any(|(name, _)| layer_of(name).is_some()) {
        return Err(Error::file(path, "no tensor of a numbered layer (`…layer.N.…`): cannot take layers from this checkpoint"));
    }
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    std::fs::create_dir_all(out).map_err(|e| Error::file(out, e.to_string()))?;
    cfg.num_hidden_layers = layers.len() as i64;
    if !keep_head {
        cfg.extra.remove("finetuning_task");
        cfg.id2label = None;
        cfg.label2id = None;
        cfg.problem_type = None;
    }
    write_safetensors(&kept, &out.join("model.safetensors"))?;
    crate::io::write_json(&out.join("config.json"), &cfg.to_hf_json())?;
    copy_files(source, out, TOKENIZER_FILES)?;
    Ok(out.to_path_buf())
}
