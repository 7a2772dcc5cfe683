//! `finetune classify` end to end through the binary: README's "your own CSV" quick start runs as
//! written; multi-label and regression runs save models that `predict` serves with labels above
//! the threshold or a value; the same seed gives the same bytes.
mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn finetune(args: &[String], cwd: &Path) -> String {
    // One intra-op thread, as tests/resume.rs explains: the full and the resumed run are compared
    // bit for bit.
    let out = Command::new(env!("CARGO_BIN_EXE_finetune")).args(args).current_dir(cwd).env("HF_HUB_OFFLINE", "1").env("NO_COLOR", "1").env("OMP_NUM_THREADS", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "finetune {args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into()
}

/// The `finetune` command lines of README's block after `<!-- quickstart: NAME -->`, joined
/// across `\` continuations.
fn readme_commands(name: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let marker = format!("<!-- quickstart: {name} -->");
    let start = readme.find(&marker).unwrap_or_else(|| panic!("README has no {marker}"));
    let block = readme[start..].split("```").nth(1).expect("a fenced block follows the marker");
    let joined = block.replace("\\\n", " ");
    joined.lines().map(|l| l.split('#').next().unwrap().trim()).filter(|l| l.starts_with("finetune ")).map(str::to_string).collect()
}

/// Splits a command line as a shell would for these simple lines (quotes, no expansions).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for ch in line.chars() {
        match (quote, ch) {
            (None, '\'' | '"') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[test]
fn readme_own_csv_quick_start_works_as_written() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let commands = readme_commands("own-data");
    assert!(commands.len() >= 2, "{commands:?}");
    let mut predictions = String::new();
    for line in &commands {
        // Run from the repository root as the README says, with the model from the cache and the
        // outputs in a temporary directory.
        let mut args: Vec<String> = words(line).into_iter().skip(1).map(|w| w.replace("runs/", &format!("{}/", tmp.path().display()))).collect();
        if args[0] == "classify" {
            args.extend(["--model".to_string(), model.display().to_string()]);
        }
        predictions = finetune(&args, &repo());
    }
    let run = commands.iter().find_map(|c| words(c).iter().position(|w| w == "--output-dir").map(|i| words(c)[i + 1].clone())).unwrap();
    let out = tmp.path().join(run.trim_start_matches("runs/"));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval_results.json")).unwrap()).unwrap();
    assert!(results["eval_accuracy"].as_f64().is_some(), "{results}");
    for f in ["classification_report.txt", "confusion_matrix.png", "config.json", "model.safetensors", "train_curves.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let lines: Vec<serde_json::Value> = predictions.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{predictions}");
    assert!(lines.iter().all(|l| ["positive", "negative", "neutral"].contains(&l["label"].as_str().unwrap())), "{predictions}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    dir.join(name).display().to_string()
}

#[test]
fn multi_label_and_regression_runs_save_models_predict_serves() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows: String = (0..24)
        .map(|i| {
            let labels = match i % 3 {
                0 => r#"["joy"]"#,
                1 => r#"["anger", "joy"]"#,
                _ => r#"[]"#,
            };
            format!("{{\"text\": \"example number {i} with some words\", \"label\": {labels}, \"score\": {}.5}}\n", i % 5)
        })
        .collect();
    let train = write(d, "train.jsonl", &rows);
    let common_args = |out: &str| -> Vec<String> {
        ["--model", &model.display().to_string(), "--train-file", &train, "--validation-split", "0.25", "--max-steps", "3", "--batch-size", "4", "--save-strategy", "no", "--output-dir", out]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    // Multi-label: lists of labels; the same seed twice gives the same results file.
    let mut ml = vec!["classify".to_string(), "--threshold".into(), "0.3".into()];
    ml.extend(common_args(&d.join("ml").display().to_string()));
    finetune(&ml, d);
    let mut again = ml.clone();
    *again.last_mut().unwrap() = d.join("ml2").display().to_string();
    finetune(&again, d);
    assert_eq!(std::fs::read(d.join("ml/eval_results.json")).unwrap(), std::fs::read(d.join("ml2/eval_results.json")).unwrap());
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("ml/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["problem_type"], "multi_label_classification");
    assert_eq!(cfg["id2label"], serde_json::json!({"0": "anger", "1": "joy"}));
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("ml/eval_results.json")).unwrap()).unwrap();
    assert!(results["eval_f1_macro"].is_number() && results["eval_joy_f1"].is_number(), "{results}");
    let input = write(d, "in.jsonl", "{\"text\": \"example number 3 with some words\"}\n");
    let pred: serde_json::Value = serde_json::from_str(finetune(&["predict".into(), "--model".into(), d.join("ml").display().to_string(), "--input".into(), input], d).trim()).unwrap();
    let probs = pred["probabilities"].as_array().unwrap();
    assert_eq!(probs.len(), 2);
    let above: Vec<&str> = pred["labels"].as_array().unwrap().iter().map(|l| l["label"].as_str().unwrap()).collect();
    let expected: Vec<&str> = ["anger", "joy"].into_iter().zip(probs).filter(|(_, p)| p.as_f64().unwrap() > 0.3).map(|(n, _)| n).collect();
    assert_eq!(above.len(), expected.len(), "{pred}");
    // Regression: decimal scores.
    let mut reg = vec!["classify".to_string(), "--label-column-name".into(), "score".into()];
    reg.extend(common_args(&d.join("reg").display().to_string()));
    finetune(&reg, d);
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("reg/config.json")).unwrap()).unwrap();
    assert_eq!(cfg["problem_type"], "regression");
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("reg/eval_results.json")).unwrap()).unwrap();
    assert!(results["eval_mse"].is_number() && results.get("eval_pearson").is_some(), "{results}");
    // CSV input too, quoted fields and ids carried through.
    let csv = write(d, "in.csv", "id,text\nq1,\"example number 3, with some words\"\nq2,plain\n");
    let out = finetune(&["predict".into(), "--model".into(), d.join("reg").display().to_string(), "--input".into(), csv], d);
    let preds: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(preds.len(), 2, "{out}");
    assert_eq!((preds[0]["id"].as_str(), preds[1]["id"].as_str()), (Some("q1"), Some("q2")));
    assert!(preds[0]["score"].is_number() && preds[0].get("label").is_none(), "{out}");
}

fn own_data_args(model: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let train = repo().join("examples/own-data/train.csv");
    let mut a: Vec<String> = ["classify", "--train-file", &train.display().to_string(), "--validation-split", "0.2", "--batch-size", "8", "--logging-steps", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--model".into(), model.display().to_string(), "--output-dir".into(), out.display().to_string()]);
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A run resumed from its step-2 checkpoint ends byte-identical to the uninterrupted run; a seed
/// sweep gets a report row of its own, named after the data, outside the GLUE score.
#[test]
fn classify_resumes_exactly_and_sweeps_into_report_rows() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let steps = ["--max-steps", "4", "--save-steps", "2"];
    finetune(&own_data_args(&model, &d.join("full"), &steps), d);
    let part = d.join("part");
    finetune(&own_data_args(&model, &part, &steps), d);
    std::fs::remove_dir_all(part.join("checkpoint-4")).unwrap();
    std::fs::remove_file(part.join("eval_results.json")).unwrap();
    let mut resumed = steps.to_vec();
    resumed.push("--resume");
    finetune(&own_data_args(&model, &part, &resumed), d);
    for f in ["eval_results.json", "model.safetensors", "eval_logits.json"] {
        assert!(std::fs::read(d.join("full").join(f)).unwrap() == std::fs::read(part.join(f)).unwrap(), "{f} differs between the full and the resumed run");
    }
    // The binary ran MKL in its reproducible mode, and says so in the run's record.
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(part.join("run_config.json")).unwrap()).unwrap();
    let mode = std::env::var("MKL_CBWR").unwrap_or_else(|_| "AUTO".into());
    assert_eq!(cfg["environment"]["mkl_cbwr"], mode.as_str(), "{}", cfg["environment"]);

    let sweep = d.join("sweep");
    finetune(&own_data_args(&model, &sweep, &["--seeds", "1,2", "--max-steps", "2", "--save-strategy", "no"]), d);
    let report = finetune(&["report".into(), sweep.display().to_string()], d);
    let row = report.lines().find(|l| l.contains("OWN-DATA")).unwrap_or_else(|| panic!("no own-data row:\n{report}"));
    assert!(row.contains("acc / f1_macro") && row.contains("(n=2)"), "{row}");
    assert!(!report.contains("GLUE score over"), "own data stays out of the GLUE score:\n{report}");
}
