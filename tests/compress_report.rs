//! `finetune report` over a compression study (written here as run directories a study leaves):
//! teacher, directly fine-tuned and distilled students get rows of their own, `bench_infer.json`
//! becomes a table naming each model (the int8 one by the model it quantized) with its row's score
//! over seeds, and distilled − direct is bootstrapped per seed from the saved dev logits.
mod common;
use serde_json::{json, Value};
use std::path::Path;

const DEV: &str = "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tentailment\n1\tc\td\tnot_entailment\n2\te\tf\tentailment\n3\tg\th\tnot_entailment\n4\ti\tj\tentailment\n5\tk\tl\tnot_entailment\n";

/// A finished RTE run in `dir` predicting `classes` on the six dev pairs.
fn run(dir: &Path, data: &Path, seed: u64, layers: i64, distill: Value, classes: &[usize]) {
    std::fs::create_dir_all(dir).unwrap();
    let gold = [0, 1, 0, 1, 0, 1];
    let accuracy = classes.iter().zip(gold).filter(|(c, g)| **c == *g).count() as f64 / 6.0;
    let args = json!({"task": "rte", "model_name_or_path": "base-model", "data_dir": data, "train": {"seed": seed}, "distill": distill});
    std::fs::write(dir.join("run_config.json"), json!({"command": "glue", "args": args, "model_config": {"num_hidden_layers": layers}}).to_string()).unwrap();
    std::fs::write(dir.join("eval_results.json"), json!({"eval_accuracy": accuracy}).to_string()).unwrap();
    let logits: Vec<[f64; 2]> = classes.iter().map(|&c| if c == 0 { [1.0, 0.0] } else { [0.0, 1.0] }).collect();
    std::fs::write(dir.join("eval_logits.json"), json!(logits).to_string()).unwrap();
    std::fs::write(dir.join("config.json"), json!({"num_hidden_layers": layers}).to_string()).unwrap();
}

fn bench_row(model: &Path, int8: bool, metric: f64, p50: f64) -> Value {
    json!({"model": model, "int8": int8, "file_bytes": 50e6, "parameters": 17_000_000, "latency_p50_ms": p50, "latency_p99_ms": p50 * 2.0, "throughput": 100.0, "metric": metric, "metrics": [["accuracy", metric]]})
}

#[test]
fn a_compression_study_reports_each_recipe_its_shipping_cost_and_the_paired_bootstrap() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, study) = (tmp.path().join("glue"), tmp.path().join("study"));
    std::fs::create_dir_all(data.join("RTE")).unwrap();
    std::fs::write(data.join("RTE/dev.tsv"), DEV).unwrap();
    let teacher = study.join("teacher");
    run(&teacher, &data, 42, 6, Value::Null, &[0, 1, 0, 1, 0, 0]);
    let kd = |alpha: f64| json!({"teacher": teacher, "alpha": alpha, "temperature": 5.0});
    // direct: 3 and 4 of 6 right; distilled: 5 and 6 of 6.
    run(&study.join("direct/seed-42"), &data, 42, 3, kd(0.0), &[0, 0, 0, 0, 0, 0]);
    run(&study.join("direct/seed-43"), &data, 43, 3, kd(0.0), &[0, 1, 0, 0, 0, 0]);
    run(&study.join("distilled/seed-42"), &data, 42, 3, kd(0.5), &[0, 1, 0, 1, 0, 0]);
    run(&study.join("distilled/seed-43"), &data, 43, 3, kd(0.5), &[0, 1, 0, 1, 0, 1]);
    let int8 = study.join("int8/distilled");
    std::fs::create_dir_all(&int8).unwrap();
    std::fs::write(int8.join("quantize_results.json"), json!({"source": study.join("distilled/seed-42")}).to_string()).unwrap();
    std::fs::write(int8.join("config.json"), json!({"num_hidden_layers": 3}).to_string()).unwrap();
    let bench = json!({"task": "rte", "rows": [bench_row(&teacher, false, 5.0 / 6.0, 10.0), bench_row(&study.join("distilled/seed-42"), false, 5.0 / 6.0, 5.0), bench_row(&int8, true, 4.0 / 6.0, 2.5)]});
    std::fs::write(study.join("bench_infer.json"), bench.to_string()).unwrap();

    let o = common::server::finetune().arg("report").arg(&study).output().unwrap();
    let md = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Three rows, not one: the teacher, and each student recipe over its two seeds.
    assert!(md.contains("| RTE | acc | 83.33 ± 0.00 (n=1)"), "{md}");
    assert!(md.contains("| RTE (3-layer student, fine-tuned directly) | acc | 58.33 ± 11.79 (n=2)"), "{md}");
    assert!(md.contains("| RTE (3-layer student, distilled with α 0.5, T 5) | acc | 91.67 ± 11.79 (n=2)"), "{md}");
    // The shipping table: who each model is, its score over seeds, the speed-up over the first.
    assert!(md.contains("| teacher, seed 42 | 6 | no | 50.0 | 17.00 M | 10.00 | 20.00 | 100.0 | 83.33 | 83.33 ± 0.00 (n=1) | 1.00× |"), "{md}");
    assert!(md.contains("| 3-layer student, distilled with α 0.5, T 5, seed 42 | 3 | no | 50.0 | 17.00 M | 5.00 | 10.00 | 100.0 | 83.33 | 91.67 ± 11.79 (n=2) | 2.00× |"), "{md}");
    assert!(md.contains("| int8 of 3-layer student, distilled with α 0.5, T 5, seed 42 | 3 | yes | 50.0 | 17.00 M | 2.50 | 5.00 | 100.0 | 66.67 | – | 4.00× |"), "{md}");
    // Distilled − direct per seed from the dev logits: +33.33 on both seeds, so a mean of +33.33.
    for seed in ["42 | 50.00 | 83.33", "43 | 66.67 | 100.00"] {
        assert!(md.contains(&format!("| RTE | 3-layer student, distilled with α 0.5, T 5 | {seed} | +33.33 [")), "{seed}: {md}");
    }
    assert!(md.contains("| mean |  |  | +33.33 ± 0.00 (n=2) |"), "{md}");

    let o = common::server::finetune().arg("report").arg(&study).args(["--format", "json"]).output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["compression"]["tables"][0]["rows"].as_array().unwrap().len(), 3);
    assert_eq!(v["compression"]["paired"].as_array().unwrap().len(), 2);
}
