//! End-to-end `finetune glue` on a small slice of real RTE: same seed ⇒ byte-identical
//! eval_results.json; the saved HF directory reloads to the same logits; predictions and the
//! majority baseline come out as run_glue.py writes them.
mod common;
use finetune::data::glue::Task;
use finetune::train::glue::{run, Baseline, GlueArgs};
use finetune::train::optim::OptimConfig;
use finetune::train::schedule::SchedulerType;
use finetune::train::args::{SaveStrategy, TrainArgs};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A GLUE root holding RTE with the first rows of the real files (and a test file from dev).
fn small_rte(glue: &Path, dir: &Path) {
    let src = glue.join("RTE");
    let dst = dir.join("RTE");
    std::fs::create_dir_all(&dst).unwrap();
    let head = |f: &str, n: usize| std::fs::read_to_string(src.join(f)).unwrap().lines().take(n + 1).map(|l| format!("{l}\n")).collect::<String>();
    std::fs::write(dst.join("train.tsv"), head("train.tsv", 96)).unwrap();
    let dev = head("dev.tsv", 40);
    std::fs::write(dst.join("dev.tsv"), &dev).unwrap();
    let test: String = dev.lines().map(|l| l.rsplit_once('\t').unwrap().0.to_string() + "\n").collect();
    std::fs::write(dst.join("test.tsv"), test).unwrap();
}

fn args(model: &Path, data: &Path, out: PathBuf) -> GlueArgs {
    GlueArgs {
        task: Task::Rte,
        model_name_or_path: model.to_string_lossy().into(),
        data_dir: data.into(),
        output_dir: out,
        max_seq_length: 64,
        per_device_eval_batch_size: 16,
        train: TrainArgs {
            optim: OptimConfig { learning_rate: 5e-5, weight_decay: 0.01, adam_beta1: 0.9, adam_beta2: 0.999, adam_epsilon: 1e-8, momentum: 0.0 },
            lr_scheduler_type: SchedulerType::Linear,
            warmup_steps: 0,
            warmup_ratio: 0.1,
            max_grad_norm: 1.0,
            per_device_train_batch_size: 16,
            gradient_accumulation_steps: 2,
            num_train_epochs: 2.0,
            max_steps: None,
            seed: 7,
            logging_steps: 1,
            eval_steps: None,
            eval_each_epoch: true,
            save_strategy: SaveStrategy::No,
            ..TrainArgs::default()
        },
        baseline: None,
        do_predict: true,
        device: tch::Device::Cpu,
        load_best_model_at_end: false,
        max_train_samples: None,
        max_eval_samples: None,
        resume: None,
        distill: None,
    }
}

/// `finetune glue` on the small RTE with the recipe of [`args`], as a separate process. One
/// intra-op thread, as tests/resume.rs explains (docs/development.md: two threads on a loaded
/// machine have now and then left two same-seed runs a last bit apart).
fn glue_cli(model: &Path, data: &Path, out: &Path) {
    let a = args(model, data, out.to_path_buf());
    let t = &a.train;
    let flags: Vec<String> = [
        "glue", "--task", "rte", "--model", &a.model_name_or_path, "--data-dir", &data.to_string_lossy(), "--output-dir", &out.to_string_lossy(),
        "--max-seq-length", &a.max_seq_length.to_string(), "--eval-batch-size", &a.per_device_eval_batch_size.to_string(),
        "--learning-rate", &t.optim.learning_rate.to_string(), "--weight-decay", &t.optim.weight_decay.to_string(), "--warmup-ratio", &t.warmup_ratio.to_string(),
        "--batch-size", &t.per_device_train_batch_size.to_string(), "--gradient-accumulation-steps", &t.gradient_accumulation_steps.to_string(),
        "--epochs", &t.num_train_epochs.to_string(), "--seed", &t.seed.to_string(), "--logging-steps", "1", "--save-strategy", "no", "--do-predict",
    ]
    .map(String::from)
    .to_vec();
    let o = Command::new(env!("CARGO_BIN_EXE_finetune")).args(&flags).env("OMP_NUM_THREADS", "1").env("NO_COLOR", "1").output().unwrap();
    assert!(o.status.success(), "finetune {flags:?} failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn same_seed_same_bytes_and_model_reloads() {
    let (Some(model), Some(glue)) = (common::model_dir(), common::glue_dir()) else { return };
    let tmp = tempfile::tempdir().unwrap();
    small_rte(&glue, tmp.path());
    let a = args(&model, tmp.path(), tmp.path().join("a"));
    glue_cli(&model, tmp.path(), &a.output_dir);
    glue_cli(&model, tmp.path(), &tmp.path().join("b"));
    let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
    let b = tmp.path().join("b");
    assert_eq!(read(&a.output_dir, "eval_results.json"), read(&b, "eval_results.json"));
    assert!(read(&a.output_dir, "model.safetensors") == read(&b, "model.safetensors"), "model.safetensors differs");

    // 96 examples, batch 16, accumulation 2 → 3 steps an epoch, 6 in all, each logged.
    let log = std::fs::read_to_string(a.output_dir.join("train_log.jsonl")).unwrap();
    let steps: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).filter(|v: &serde_json::Value| v.get("loss").is_some()).collect();
    assert_eq!(steps.len(), 6);
    // Warmup ceil(0.1 * 6) = 1 step: lr 0 first, then linear decay from 5e-5.
    assert_eq!(steps[0]["learning_rate"], 0.0);
    assert!((steps[1]["learning_rate"].as_f64().unwrap() - 5e-5).abs() < 1e-12);
    let results: serde_json::Value = serde_json::from_slice(&read(&a.output_dir, "eval_results.json")).unwrap();
    assert_eq!(results["eval_samples"], 40);
    assert_eq!(results["epoch"], 2.0);

    // The saved directory is a model finetune loads back (now with its trained head).
    let cfg: serde_json::Value = serde_json::from_slice(&read(&a.output_dir, "config.json")).unwrap();
    assert_eq!(cfg["id2label"]["1"], "not_entailment");
    assert_eq!(cfg["architectures"][0], "BertForSequenceClassification");
    let bert_cfg = finetune::model::config::BertConfig::from_file(&a.output_dir.join("config.json")).unwrap();
    let (_, _, report) = finetune::model::checkpoint::load_sequence_classifier(&a.output_dir, &bert_cfg, 2, tch::Device::Cpu).unwrap();
    assert!(report.newly_initialised.is_empty(), "{report:?}");

    let preds = std::fs::read_to_string(a.output_dir.join("predict_results_rte.txt")).unwrap();
    let lines: Vec<&str> = preds.lines().collect();
    assert_eq!(lines[0], "index\tprediction");
    assert_eq!(lines.len(), 41);
    assert!(lines[1..].iter().all(|l| l.ends_with("\tentailment") || l.ends_with("\tnot_entailment")), "{preds}");
}

#[test]
fn majority_baseline_scores_the_most_frequent_training_label() {
    let Some(glue) = common::glue_dir() else { return };
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut a = args(&model, &glue, tmp.path().join("wnli"));
    a.task = Task::Wnli;
    a.baseline = Some(Baseline::Majority);
    let results = run(&a).unwrap();
    let count = |f: &str, label: &str| {
        std::fs::read_to_string(glue.join("WNLI").join(f)).unwrap().lines().skip(1).filter(|l| l.ends_with(&format!("\t{label}"))).count()
    };
    let majority = if count("train.tsv", "1") > count("train.tsv", "0") { "1" } else { "0" };
    let expected = count("dev.tsv", majority) as f64 / 71.0;
    assert_eq!(results["eval_accuracy"].as_f64().unwrap(), expected);
}
