//! Data-parallel `finetune glue` through the binary on 2 CPU ranks × 1 thread (Gloo): with dropout
//! off it logs the losses of one process with the same global batch and reaches the same dev
//! metric; a SIGKILLed rank ends the job with an error naming it (no hang), and `--resume` then
//! finishes with the bytes of the uninterrupted 2-rank run.
mod common;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A copy of the default model with dropout off, so that one process and two ranks compute the
/// same function of the same batches.
fn model_without_dropout(base: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(base).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    cfg["hidden_dropout_prob"] = 0.0.into();
    cfg["attention_probs_dropout_prob"] = 0.0.into();
    std::fs::write(dir.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
}

fn command(model: &Path, glue: &Path, out: &Path, batch: usize, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_finetune"));
    c.args(["glue", "--task", "rte", "--max-train-samples", "64", "--max-eval-samples", "32", "--epochs", "2", "--logging-steps", "1", "--seed", "42"])
        .arg("--model")
        .arg(model)
        .arg("--data-dir")
        .arg(glue)
        .arg("--output-dir")
        .arg(out)
        .args(["--batch-size", &batch.to_string(), "--ddp-timeout", "60"])
        .args(extra)
        .env("OMP_NUM_THREADS", "1")
        .env("NO_COLOR", "1")
        .env("HF_HUB_OFFLINE", "1");
    c
}

fn ok(o: Output) {
    assert!(o.status.success(), "finetune failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

fn losses(dir: &Path) -> Vec<f64> {
    let log = std::fs::read_to_string(dir.join("train_log.jsonl")).unwrap();
    log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter_map(|v| v["loss"].as_f64()).collect()
}

fn results(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("eval_results.json")).unwrap()).unwrap()
}

/// The child of `launcher` that runs rank `rank` (its RANK variable).
fn rank_pid(launcher: &Child, rank: usize) -> Option<u32> {
    let want = format!("RANK={rank}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        (ppid == launcher.id() && env.split(|&b| b == 0).any(|v| v == want.as_bytes())).then_some(pid)
    })
}

#[test]
fn two_ranks_train_as_one_process_and_survive_a_killed_rank() {
    let (Some(base), Some(glue)) = (common::model_dir(), common::glue_dir()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    model_without_dropout(&base, &model);

    // Global batch 8: one process × 8, two ranks × 4.
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(command(&model, &glue, &one, 8, &["--save-strategy", "no"]).output().unwrap());
    ok(command(&model, &glue, &two, 4, &["--save-strategy", "no", "--nproc-per-node", "2"]).output().unwrap());
    let (l1, l2) = (losses(&one), losses(&two));
    assert_eq!(l1.len(), 16);
    assert_eq!(l1.len(), l2.len());
    for (step, (a, b)) in l1.iter().zip(&l2).enumerate() {
        assert!((a - b).abs() < 1e-5, "step {}: one process {a}, two ranks {b}", step + 1);
    }
    let (r1, r2) = (results(&one), results(&two));
    assert_eq!(r1["eval_accuracy"], r2["eval_accuracy"]);
    assert!((r1["eval_loss"].as_f64().unwrap() - r2["eval_loss"].as_f64().unwrap()).abs() < 1e-5, "{r1} vs {r2}");
    // Rank 0 alone writes; the others' scratch directories are gone.
    assert!(two.join("model.safetensors").is_file());

    // SIGKILL rank 1 once the first checkpoint (step 4 of 16) is complete.
    let killed = tmp.path().join("killed");
    let launcher = command(&model, &glue, &killed, 4, &["--save-steps", "4", "--nproc-per-node", "2"]).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while !killed.join("checkpoint-4/manifest.json").is_file() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint-4 after 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rank_pid(&launcher, 1).expect("rank 1 is running");
    assert!(Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap().success());
    let killed_at = Instant::now();
    let out = launcher.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(killed_at.elapsed() < Duration::from_secs(60), "the job took {:?} to end", killed_at.elapsed());
    assert!(stderr.contains(&format!("rank 1 (pid {pid}) was killed (SIGKILL)")), "{stderr}");
    assert!(!killed.join("eval_results.json").exists());

    let resumed = command(&model, &glue, &killed, 4, &["--save-steps", "4", "--nproc-per-node", "2", "--resume"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr).to_string();
    ok(resumed);
    assert!(stderr.contains("resuming from"), "{stderr}");
    for f in ["eval_results.json", "model.safetensors"] {
        assert!(std::fs::read(two.join(f)).unwrap() == std::fs::read(killed.join(f)).unwrap(), "{f}: the resumed run differs from the uninterrupted one");
    }
    assert_eq!(losses(&killed), l2);
}
