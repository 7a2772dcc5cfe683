//! A second run in the same output directory never silently destroys the first: it is refused
//! unless it resumes the run or replaces it with `--overwrite-output-dir`, which removes the old
//! run's files (and nothing else) first; leftovers of interrupted checkpoint saves are cleaned.
mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

fn glue(model: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/glue-tiny");
    let o = Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args(["glue", "--task", "sst2", "--batch-size", "8", "--max-seq-length", "48", "--model"])
        .arg(model)
        .arg("--data-dir")
        .arg(data)
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into())
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_second_run_is_refused_unless_it_resumes_or_overwrites() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("run");
    let (ok, err) = glue(&model, &d, &["--max-steps", "6", "--save-steps", "3"]);
    assert!(ok, "{err}");
    std::fs::write(d.join("notes.txt"), "mine").unwrap();
    let results = std::fs::read(d.join("eval_results.json")).unwrap();

    // The reproduction: another seed, rotation down to one checkpoint.
    let second = ["--seed", "5", "--max-steps", "2", "--save-steps", "1", "--save-total-limit", "1"];
    let (ok, err) = glue(&model, &d, &second);
    assert!(!ok, "a second run into a used directory must fail");
    assert!(err.contains("already holds a run") && err.contains("--resume") && err.contains("--overwrite-output-dir"), "{err}");
    assert!(names(&d).contains(&"checkpoint-3".to_string()) && names(&d).contains(&"checkpoint-6".to_string()));
    assert_eq!(std::fs::read(d.join("eval_results.json")).unwrap(), results, "the first run's results are untouched");

    let mut overwrite = second.to_vec();
    overwrite.push("--overwrite-output-dir");
    let (ok, err) = glue(&model, &d, &overwrite);
    assert!(ok, "{err}");
    let left = names(&d);
    assert!(!left.contains(&"checkpoint-3".to_string()) && !left.contains(&"checkpoint-6".to_string()), "{left:?}");
    assert!(left.contains(&"checkpoint-2".to_string()) && left.contains(&"eval_results.json".to_string()), "{left:?}");
    assert!(left.contains(&"notes.txt".to_string()), "files the run did not write stay: {left:?}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("run_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["args"]["train"]["seed"], 5);

    // A checkpoint save that a crash interrupted leaves a temporary directory: cleaned on resume.
    std::fs::create_dir(d.join(".checkpoint-9.tmpAbC")).unwrap();
    let mut resume = overwrite[..overwrite.len() - 1].to_vec();
    resume.push("--resume");
    let (ok, err) = glue(&model, &d, &resume);
    assert!(ok, "{err}");
    assert!(!d.join(".checkpoint-9.tmpAbC").exists() && err.contains("did not finish"), "{err}");
}
