//! Multi-seed sweeps, reports and comparisons through the binary, on the SST-2 sample the
//! repository ships: a sweep killed midway finishes only the remaining seeds when re-run; the
//! Markdown report carries mean ± std, references, the majority baseline and both GLUE means;
//! `compare` is deterministic for a seed.
mod common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn finetune() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_finetune"));
    c.env("HF_HUB_OFFLINE", "1");
    c
}

fn sweep(model: &Path, out: &Path) -> Command {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/glue-tiny");
    let mut c = finetune();
    c.args(["glue", "--task", "sst2", "--seeds", "1,2,3", "--max-steps", "6", "--batch-size", "8", "--max-seq-length", "48"])
        .args(["--logging-steps", "1", "--save-steps", "2"])
        .arg("--model")
        .arg(model)
        .arg("--data-dir")
        .arg(data)
        .arg("--output-dir")
        .arg(out);
    c
}

fn output(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into())
}

#[test]
fn killed_sweep_reruns_only_the_remaining_seeds_and_reports() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");

    // Kill the sweep once seed 2 has logged a step (seed 1 is finished by then).
    let mut child = sweep(&model, &out).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while !std::fs::read_to_string(out.join("seed-2/train_log.jsonl")).is_ok_and(|l| l.contains("\"step\":3,")) {
        assert!(Instant::now() < deadline && child.try_wait().unwrap().is_none(), "sweep ended or stalled before seed 2 ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let seed1 = out.join("seed-1/eval_results.json");
    let before = std::fs::metadata(&seed1).unwrap().modified().unwrap();
    assert!(!out.join("seed-2/eval_results.json").exists() && !out.join("seed-3").exists());

    let (ok, stdout, stderr) = output(&mut sweep(&model, &out));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("seed 1: finished earlier"), "{stderr}");
    assert!(stderr.contains("resuming from"), "seed 2 resumes from its checkpoint: {stderr}");
    assert_eq!(std::fs::metadata(&seed1).unwrap().modified().unwrap(), before, "seed 1 was not rerun");
    let summary: serde_json::Value = serde_json::from_str(&stdout[stdout.find('{').unwrap()..]).unwrap();
    assert_eq!(summary["seeds"], serde_json::json!([1, 2, 3]));
    let acc = &summary["metrics"]["eval_accuracy"];
    assert_eq!(acc["n"], 3);
    let values: Vec<f64> = acc["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let mean = values.iter().sum::<f64>() / 3.0;
    assert!((acc["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    for s in 1..=3 {
        assert!(out.join(format!("seed-{s}/train_curves.png")).is_file());
    }

    // Report over the sweep.
    let md = tmp.path().join("report/report.md");
    let (ok, _, stderr) = output(finetune().arg("report").arg(&out).arg("--out").arg(&md));
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&md).unwrap();
    let row = text.lines().find(|l| l.starts_with("| SST2 |")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(&format!("{:.2} ± ", mean * 100.0)) && row.contains("(n=3)"), "{row}");
    assert!(row.contains("| 92.32 |") && row.contains("| 97.80 |"), "HF and human references: {row}");
    // The majority class of the sample's training labels, scored on its dev file.
    let labels = |f: &str| -> Vec<String> {
        let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/glue-tiny/SST-2").join(f)).unwrap();
        text.lines().skip(1).map(|l| l.rsplit('\t').next().unwrap().to_string()).collect()
    };
    let train = labels("train.tsv");
    let ones = train.iter().filter(|l| *l == "1").count();
    let majority = if ones * 2 > train.len() { "1" } else { "0" };
    let dev = labels("dev.tsv");
    let expected = dev.iter().filter(|l| *l == majority).count() as f64 / dev.len() as f64 * 100.0;
    assert!(row.contains(&format!("| {expected:.2} |")), "majority {expected:.2}: {row}");
    assert!(text.contains("arithmetic mean") && text.contains("geometric mean") && text.contains("Nangia & Bowman 2019"));
    assert!(tmp.path().join("report/seeds_spread.png").is_file());

    // compare: same seed, same answer; a run against itself differs by exactly 0.
    let cmp = |a: &str, b: &str| output(finetune().arg("compare").arg(out.join(a)).arg(out.join(b)).args(["--seed", "3"]));
    let (ok, first, stderr) = cmp("seed-1", "seed-2");
    assert!(ok, "{stderr}");
    assert_eq!(first, cmp("seed-1", "seed-2").1);
    let (_, same, _) = cmp("seed-3", "seed-3");
    assert!(same.contains("B − A = +0.00 points, 95% CI [+0.00, +0.00]"), "{same}");
}
