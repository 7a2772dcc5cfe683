//! Output directories as transformers treats them: a directory that already holds a run is not
//! written into unless the new run continues it (`--resume`) or replaces it
//! (`--overwrite-output-dir`, which first removes the old run's files, and only those). The
//! leftovers of checkpoint saves that a crash interrupted are removed either way.
use crate::error::{Error, Result};
use std::path::Path;

/// Whether a directory entry is something a run writes (and so what `--overwrite-output-dir`
/// removes); anything else in the directory is left alone.
fn is_run_output(name: &str) -> bool {
    const FILES: &[&str] = &[
        "run_config.json", "train_log.jsonl", "train_results.json", "eval_results.json", "test_results.json", "train_curves.png",
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
        "seeds_summary.json", "predictions.json", "nbest_predictions.json", "null_odds.json", "best_model", "label_list.txt",
    ];
    const PREFIXES: &[&str] =
        &["checkpoint-", "seed-", "eval_logits", "predict_results", "confusion_matrix", "classification_report", "test_", "eval-"];
    FILES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The files that mark a directory as holding a run (besides its `checkpoint-*` folders).
const RUN_FILES: [&str; 4] = ["run_config.json", "train_log.jsonl", "eval_results.json", "seeds_summary.json"];

/// What marks a directory as holding a run: its config, log, results or checkpoints.
fn marks_a_run(name: &str) -> bool {
    RUN_FILES.contains(&name) || name.starts_with("checkpoint-")
}

/// An evaluation's default output directory: `eval-<data file stem>` in the model directory.
pub fn eval_dir(model_dir: &Path, data_file: &Path) -> std::path::PathBuf {
    model_dir.join(format!("eval-{}", data_file.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default()))
}

/// Makes `out` ready for an evaluation's outputs (`finetune ner eval`, `finetune image eval`):
/// created if missing; refused if it is, contains or lies inside what the evaluation reads, or if
/// it holds a training run (its results are that run's; an earlier evaluation's are replaced).
pub fn prepare_eval(out: &Path, reads: &[(&str, Option<&Path>)]) -> Result<()> {
    crate::io::refuse_overlap(out, "--output-dir", reads)?;
    // An earlier evaluation's results are this evaluation's to replace; a run's other files are not.
    if let Some(found) = RUN_FILES.iter().filter(|n| **n != "eval_results.json").find(|n| out.join(n).exists()) {
        return Err(Error::file(out, format!("holds a training run ({found}); an evaluation writes into a directory of its own: choose another --output-dir (nothing was written)")));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

/// Makes `out` ready for a run: created if missing; refused if it holds another run, unless
/// `resume` (the run continues it) or `overwrite` (its files are removed first); refused whatever
/// the flags if it is, contains or lies inside a path the run reads (`reads`: the model, the
/// teacher, the data, each with its flag).
pub fn prepare(out: &Path, resume: bool, overwrite: bool, reads: &[(&str, Option<&Path>)]) -> Result<()> {
    crate::io::refuse_overlap(out, "--output-dir", reads)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut names: Vec<String> = std::fs::read_dir(out)
        .map_err(|e| Error::io(out, e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for tmp in names.iter().filter(|n| n.starts_with(".checkpoint-") && n.contains(".tmp")) {
        let p = out.join(tmp);
        tracing::warn!("removing {}, left by a checkpoint save that did not finish", p.display());
        std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    let previous: Vec<&String> = names.iter().filter(|n| marks_a_run(n)).collect();
    if previous.is_empty() || resume {
        return Ok(());
    }
    if !overwrite {
        let shown: Vec<&str> = previous.iter().take(6).map(|s| s.as_str()).collect();
        return Err(Error::file(
            out,
            format!(
                "already holds a run ({}{}): pass --resume to continue it, --overwrite-output-dir to replace it, or choose another --output-dir",
                shown.join(", "),
                if previous.len() > shown.len() { ", ..." } else { "" }
            ),
        ));
    }
    let mut removed = 0;
    for name in names.iter().filter(|n| is_run_output(n)) {
        let p = out.join(name);
        let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        r.map_err(|e| Error::io(&p, e))?;
        removed += 1;
    }
    tracing::info!("--overwrite-output-dir: removed {removed} file(s) and folder(s) of the previous run in {}", out.display());
    Ok(())
}
