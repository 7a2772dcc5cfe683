//! Checkpoints and exact resume, end to end through the binary on the small SST-2 sample the
//! repository ships: a run killed with SIGKILL at a random step and resumed ends byte-identical to
//! an uninterrupted one; SIGTERM stops cleanly with a checkpoint; an incomplete checkpoint is
//! skipped in favour of the previous one; a changed configuration is refused.
mod common;
use finetune::train::resume;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOTAL_STEPS: usize = 32; // 128 examples, batch 8, 2 epochs

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/glue-tiny")
}

fn command(model: &Path, out: &Path, extra: &[&str]) -> Command {
    let batch = if extra.contains(&"--batch-size") { &[][..] } else { &["--batch-size", "8"][..] };
    let mut c = Command::new(env!("CARGO_BIN_EXE_finetune"));
    // One intra-op thread: under CI's oversubscribed cores a multi-threaded full run and its
    // resumed twin have ended a last bit apart now and then (cause not yet found; see
    // docs/development.md). The resume logic is what these tests check.
    c.env("OMP_NUM_THREADS", "1");
    c.args(["glue", "--task", "sst2", "--epochs", "2", "--max-seq-length", "48"])
        .args(batch)
        .args(["--save-steps", "8", "--logging-steps", "1", "--eval-steps", "8", "--load-best-model-at-end"])
        .arg("--model")
        .arg(model)
        .arg("--data-dir")
        .arg(data_dir())
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn run_ok(model: &Path, out: &Path, extra: &[&str]) -> String {
    let o = command(model, out, extra).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

/// Waits until the run has logged `step`, or the process ended.
fn wait_for_step(child: &mut Child, out: &Path, step: usize) {
    let needle = format!("\"step\":{step},");
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if std::fs::read_to_string(out.join("train_log.jsonl")).is_ok_and(|l| l.contains(&needle)) {
            return;
        }
        assert!(child.try_wait().unwrap().is_none(), "run ended before step {step}");
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("step {step} never logged");
}

fn same_bytes(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{f} differs between {} and {}", a.display(), b.display());
    }
}

const OUTPUTS: &[&str] = &["eval_results.json", "model.safetensors", "best_model/model.safetensors"];

#[test]
fn killed_run_resumes_to_identical_results() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run_ok(&model, &full, &[]);
    assert_eq!(resume::list(&full).len(), TOTAL_STEPS / 8);

    // SIGKILL somewhere after the first checkpoint (step 8), before the end.
    let kill_at = rand::thread_rng().gen_range(9..TOTAL_STEPS - 2);
    eprintln!("killing at step {kill_at}");
    let killed = tmp.path().join("killed");
    let mut child = command(&model, &killed, &[]).spawn().unwrap();
    wait_for_step(&mut child, &killed, kill_at);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!killed.join("eval_results.json").exists());
    let err = run_ok(&model, &killed, &["--resume"]);
    assert!(err.contains("resuming from"), "{err}");
    same_bytes(&full, &killed, OUTPUTS);

    // The log holds each step once, as the uninterrupted run's does (timings aside).
    let steps = |d: &Path| -> Vec<u64> {
        let log = std::fs::read_to_string(d.join("train_log.jsonl")).unwrap();
        log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v.get("loss").is_some()).map(|v| v["step"].as_u64().unwrap()).collect()
    };
    assert_eq!(steps(&killed), (1..=TOTAL_STEPS as u64).collect::<Vec<_>>());
}

#[test]
fn sigterm_checkpoints_and_incomplete_checkpoints_are_skipped() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run_ok(&model, &full, &["--save-strategy", "no"]);

    let out = tmp.path().join("stopped");
    let mut child = command(&model, &out, &[]).spawn().unwrap();
    wait_for_step(&mut child, &out, 11);
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("stopped by a signal") && err.contains("--resume auto"), "{err}");
    let newest = resume::list(&out)[0].clone();
    assert!(newest.0 >= 11, "a checkpoint at the stop, got {newest:?}");
    assert!(resume::validate(&newest.1).is_ok());

    // Damage the newest checkpoint: the resume warns, falls back to the previous one, and still
    // lands exactly where the uninterrupted run did.
    let weights = newest.1.join("model.safetensors");
    let len = std::fs::metadata(&weights).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(len / 2).unwrap();
    let err = run_ok(&model, &out, &["--resume", "auto"]);
    assert!(err.contains(&format!("skipping checkpoint {}", newest.1.display())) && err.contains("truncated"), "{err}");
    same_bytes(&full, &out, OUTPUTS);
}

#[test]
fn resume_refuses_a_different_configuration() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    run_ok(&model, &out, &["--max-steps", "8"]);
    let ckpt = resume::checkpoint_dir(&out, 8);
    let o = command(&model, &out, &["--resume", ckpt.to_str().unwrap(), "--batch-size", "4"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("refusing to resume") && err.contains("per_device_train_batch_size: checkpoint has 8, this command has 4"), "{err}");
}

#[test]
fn checkpoint_validation_detects_missing_and_truncated_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let write_all = |dir: &Path| -> finetune::Result<()> {
        for f in resume::CHECKPOINT_FILES {
            std::fs::write(dir.join(f), format!("content of {f}")).unwrap();
        }
        Ok(())
    };
    for step in [10, 20, 30] {
        resume::save(out, step, write_all).unwrap();
    }
    assert_eq!(resume::latest_complete(out), Some(resume::checkpoint_dir(out, 30)));
    std::fs::remove_file(resume::checkpoint_dir(out, 30).join(resume::OPTIMIZER_FILE)).unwrap();
    assert!(resume::validate(&resume::checkpoint_dir(out, 30)).unwrap_err().contains("optimizer.safetensors is missing"));
    std::fs::write(resume::checkpoint_dir(out, 20).join(resume::STATE_FILE), "content of trainer_state.jsoX").unwrap();
    assert!(resume::validate(&resume::checkpoint_dir(out, 20)).unwrap_err().contains("sha256"));
    assert_eq!(resume::latest_complete(out), Some(resume::checkpoint_dir(out, 10)));
    // A directory left by a save that never finished (no manifest) is not complete either.
    std::fs::create_dir(out.join("checkpoint-40")).unwrap();
    assert!(resume::validate(&out.join("checkpoint-40")).unwrap_err().contains("never finished"));
    assert_eq!(resume::latest_complete(out), Some(resume::checkpoint_dir(out, 10)));
    // A failed save leaves nothing behind.
    assert!(resume::save(out, 50, |_| Err(finetune::Error::Invalid("disk full".into()))).is_err());
    assert!(!resume::checkpoint_dir(out, 50).exists());
    assert_eq!(std::fs::read_dir(out).unwrap().count(), 4);
}

/// `--save-total-limit` rotation deletes only the oldest checkpoints of the run itself: those of
/// another run (another fingerprint) in the same directory are never touched.
#[test]
fn rotation_removes_only_this_runs_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let save = |step: usize, run: &str| {
        resume::save(out, step, |dir| {
            for f in resume::CHECKPOINT_FILES {
                std::fs::write(dir.join(f), format!("content of {f}")).unwrap();
            }
            std::fs::write(dir.join(resume::FINGERPRINT_FILE), serde_json::json!({ "run": run }).to_string()).unwrap();
            Ok(())
        })
        .unwrap();
    };
    for step in [10, 20, 30] {
        save(step, "ours");
    }
    for step in [15, 40] {
        save(step, "foreign");
    }
    resume::rotate(out, 1, &serde_json::json!({ "run": "ours" })).unwrap();
    let left: Vec<usize> = resume::list(out).into_iter().map(|(s, _)| s).collect();
    assert_eq!(left, vec![40, 30, 15], "the newest of ours and every foreign checkpoint stay");
}
