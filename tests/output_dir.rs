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

/// Issue 39's first two ways to lose files: an output directory onto (or around, or inside) the
/// model or an input, and `predict --output` onto its input or into the model. Each is refused
/// before anything is written or removed.
#[test]
fn an_output_onto_what_the_command_reads_is_refused_and_nothing_is_touched() {
    let Some(base) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("runs").join("reviews");
    common::fine_tuned_classifier(&base, &m, &["negative", "neutral", "positive"], "classify");
    std::fs::write(m.join("run_config.json"), "{}").unwrap();
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> { names(dir).into_iter().map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap_or_default())).collect() };
    let before = snapshot(&m);
    let train = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/own-data/train.csv");
    let classify = |model: &Path, train: &Path, out: &Path| {
        let o = common::server::finetune()
            .args(["classify", "--validation-split", "0.2", "--overwrite-output-dir", "--model"])
            .arg(model)
            .arg("--train-file")
            .arg(train)
            .arg("--output-dir")
            .arg(out)
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    for (out, relation) in [(m.clone(), "is"), (m.join("again"), "lies inside"), (tmp.path().join("runs"), "contains")] {
        let (ok, err) = classify(&m, &train, &out);
        assert!(!ok && err.contains(&format!("--output-dir {relation} the --model directory")) && err.contains("nothing was written or removed"), "{err}");
        assert!(snapshot(&m) == before, "the model directory changed");
        assert!(!m.join("again").exists());
    }
    // The data inside the output directory.
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&train, data.join("train.csv")).unwrap();
    let (ok, err) = classify(&base, &data.join("train.csv"), &data);
    assert!(!ok && err.contains("--output-dir contains the --train-file"), "{err}");

    // predict --output onto its input, or into the model.
    let input = tmp.path().join("x.jsonl");
    std::fs::write(&input, "{\"text\": \"great value\"}\n").unwrap();
    for (out, what) in [(input.clone(), "is the --input file"), (m.join("config.json"), "lies inside the --model directory")] {
        let o = common::server::finetune().args(["predict", "--model"]).arg(&m).arg("--input").arg(&input).arg("--output").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(&format!("--output {what}")), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&input).unwrap(), "{\"text\": \"great value\"}\n");
    assert!(snapshot(&m) == before, "the model directory changed");
    // An ordinary --output still works.
    let o = common::server::finetune().args(["predict", "--model"]).arg(&m).arg("--input").arg(&input).arg("--output").arg(tmp.path().join("p.jsonl")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Issue 39's third and fourth ways: an evaluation into another run's directory overwrote that
/// run's results; a run refused by its argument checks had already written its run config, so
/// the corrected rerun was refused as "already holds a run".
#[test]
fn evaluations_keep_out_of_runs_and_a_refused_run_writes_nothing() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("reviews");
    std::fs::create_dir(&run).unwrap();
    std::fs::write(run.join("run_config.json"), "{}").unwrap();
    std::fs::write(run.join("eval_results.json"), "{\"eval_accuracy\": 0.9}").unwrap();
    let dev = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seqeval");
    let file = std::fs::read_dir(&dev).unwrap().map(|e| e.unwrap().path()).next().unwrap();
    let o = common::server::finetune().args(["ner", "eval", "--model"]).arg(&model).arg("--file").arg(&file).arg("--output-dir").arg(&run).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("holds a training run (run_config.json)"), "{err}");
    assert_eq!(std::fs::read_to_string(run.join("eval_results.json")).unwrap(), "{\"eval_accuracy\": 0.9}");
    assert_eq!(names(&run), ["eval_results.json", "run_config.json"]);

    let out = tmp.path().join("bad");
    let (ok, err) = glue(&model, &out, &["--gradient-accumulation-steps", "0", "--max-steps", "2"]);
    assert!(!ok && err.contains("gradient_accumulation_steps must be positive"), "{err}");
    assert!(!out.exists() || names(&out).is_empty(), "a refused run wrote {:?}", names(&out));
    let (ok, err) = glue(&model, &out, &["--max-steps", "2", "--save-strategy", "no"]);
    assert!(ok, "the corrected rerun: {err}");
}
