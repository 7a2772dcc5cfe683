//! Inference: `finetune predict` reproduces the logits evaluation wrote, and the HTTP server
//! answers valid requests and rejects malformed JSON, wrong types, oversized bodies and batches,
//! empty batches and unknown routes with the right status and a JSON message; it finishes an
//! in-flight request when told to stop.
mod common;
use common::server::{call, finetune, start};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/glue-tiny")
}

/// A quickly fine-tuned SST-2 classifier (4 steps on the bundled sample).
fn fine_tuned(base: &Path, out: &Path) {
    let o = finetune()
        .args(["glue", "--task", "sst2", "--max-steps", "4", "--batch-size", "8", "--max-seq-length", "48", "--save-strategy", "no"])
        .arg("--model")
        .arg(base)
        .arg("--data-dir")
        .arg(sample())
        .arg("--output-dir")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn predict_reproduces_evaluation() {
    let Some(base) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fine_tuned(&base, &run);
    let preds = tmp.path().join("preds.jsonl");
    let o = finetune().arg("predict").arg("--model").arg(&run).arg("--input").arg(sample().join("SST-2/dev.tsv")).arg("--output").arg(&preds).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("examples/s"));
    let eval: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(run.join("eval_logits.json")).unwrap()).unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&preds).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), eval.len());
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("eval_results.json")).unwrap()).unwrap();
    let gold: Vec<String> = std::fs::read_to_string(sample().join("SST-2/dev.tsv")).unwrap().lines().skip(1).map(|l| l.rsplit('\t').next().unwrap().to_string()).collect();
    let mut correct = 0;
    for (i, (line, logits)) in lines.iter().zip(&eval).enumerate() {
        let got: Vec<f32> = line["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(&got, logits, "example {i}");
        assert_eq!(line["id"], i.to_string());
        let p: Vec<f64> = line["probabilities"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        correct += (line["label"].as_str().unwrap() == gold[i]) as usize;
    }
    // The predicted labels score exactly the accuracy evaluation reported.
    assert_eq!(correct as f64 / gold.len() as f64, results["eval_accuracy"].as_f64().unwrap());

    // JSONL input with the same texts gives the same predictions; bad lines are named.
    let jsonl = tmp.path().join("in.jsonl");
    let texts: Vec<String> = std::fs::read_to_string(sample().join("SST-2/dev.tsv")).unwrap().lines().skip(1).map(|l| l.split('\t').next().unwrap().to_string()).collect();
    std::fs::write(&jsonl, texts.iter().map(|t| serde_json::json!({ "text": t }).to_string() + "\n").collect::<String>()).unwrap();
    let o = finetune().arg("predict").arg("--model").arg(&run).arg("--input").arg(&jsonl).output().unwrap();
    let first: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(first["logits"], lines[0]["logits"]);
    std::fs::write(&jsonl, "{\"text\": \"fine\"}\n{\"text\": 3}\n").unwrap();
    let o = finetune().arg("predict").arg("--model").arg(&run).arg("--input").arg(&jsonl).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("in.jsonl:2") && err.contains("`text` must be a string"), "{err}");
    // An empty text (training refuses them) gets no prediction.
    std::fs::write(&jsonl, "{\"text\": \"fine\"}\n{\"id\": \"e\", \"text\": \"  \"}\n").unwrap();
    let o = finetune().arg("predict").arg("--model").arg(&run).arg("--input").arg(&jsonl).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("input `e` (input 2 of 2) has an empty text"), "{err}");
}

#[test]
fn server_answers_and_rejects_with_json() {
    let Some(base) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fine_tuned(&base, &run);
    let s = start(&run, &[]);
    let url = |p: &str| format!("{}{p}", s.base);

    assert_eq!(call("GET", &url("/health"), None), (200, serde_json::json!({ "status": "ok" })));
    let (st, meta) = call("GET", &url("/metadata"), None);
    assert_eq!(st, 200);
    assert_eq!(meta["task"], "sst2");
    assert_eq!(meta["labels"], serde_json::json!(["0", "1"]));
    assert_eq!(meta["max_seq_length"], 48);
    assert_eq!(meta["model"], "run");
    assert!(!meta.to_string().contains(tmp.path().to_str().unwrap()), "no local paths: {meta}");

    let (st, one) = call("POST", &url("/predict"), Some(r#"{"text": "a gripping, funny film"}"#));
    assert_eq!(st, 200);
    assert!(one["label"] == "0" || one["label"] == "1");
    let (st, batch) = call("POST", &url("/predict"), Some(r#"{"inputs": [{"text": "a gripping, funny film"}, "dull", {"text": "a", "text_pair": "b"}]}"#));
    assert_eq!(st, 200);
    let preds = batch["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    // Batched and padded with other inputs, the first input gets its single-request answer (up to
    // float rounding of a different batch shape).
    assert_eq!(preds[0]["label"], one["label"]);
    for (a, b) in preds[0]["logits"].as_array().unwrap().iter().zip(one["logits"].as_array().unwrap()) {
        assert!((a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-5, "{a} vs {b}");
    }

    let cases: &[(&str, u16, &str)] = &[
        (r#"{"text": "unterminated"#, 400, "malformed JSON"),
        (r#"{"text": 42}"#, 422, "invalid type"),
        (r#"{"text": "x", "text_pair": ["y"]}"#, 422, "invalid type"),
        (r#"{"question": "why?"}"#, 422, "unknown field `question`"),
        (r#"{"inputs": []}"#, 422, "empty"),
        (r#"{"inputs": {"text": "x"}}"#, 422, "must be an array"),
        (r#"{"inputs": ["a", "b", "c", "d", "e"]}"#, 413, "limit is 4"),
        // serde reads a struct from an array too: ["a", "b"] was taken as a text pair.
        (r#"["a", "b"]"#, 422, "found an array"),
        (r#"["a", "b", "c"]"#, 422, "found an array"),
        (r#"{"inputs": [1]}"#, 422, "inputs[0]: expected a string"),
        (r#"{"text": "  "}"#, 422, "has an empty `text`"),
        (r#"{"inputs": ["ok", {"text": "x", "text_pair": ""}]}"#, 422, "input 1 has an empty `text_pair`"),
    ];
    for (body, status, msg) in cases {
        let (st, v) = call("POST", &url("/predict"), Some(body));
        assert_eq!(st, *status, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(msg), "{body}: {v}");
        assert_eq!(v["status"], *status);
    }
    let big = format!(r#"{{"text": "{}"}}"#, "word ".repeat(2000));
    let (st, v) = call("POST", &url("/predict"), Some(&big));
    assert_eq!(st, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("4096 bytes"));
    let (st, v) = call("GET", &url("/nope"), None);
    assert_eq!(st, 404);
    assert!(v["error"].as_str().unwrap().contains("/nope"));
    // A route's other methods: 405 with a JSON body, like every other error.
    for (method, path, allow) in [("GET", "/predict", "POST"), ("POST", "/health", "GET"), ("DELETE", "/metadata", "GET")] {
        let (st, v) = call(method, &url(path), if method == "POST" { Some("{}") } else { None });
        assert_eq!((st, v["status"].as_u64()), (405, Some(405)), "{method} {path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(&format!("use {allow}")), "{method} {path}: {v}");
    }
    // Still healthy after all of that.
    assert_eq!(call("GET", &url("/health"), None).0, 200);
}

#[test]
fn sigterm_finishes_the_request_in_flight() {
    let Some(base) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    fine_tuned(&base, &run);
    // A long batching window keeps the request waiting in the server while the signal arrives.
    let mut s = start(&run, &["--max-wait-ms", "1500"]);
    let url = format!("{}/predict", s.base);
    let pending = std::thread::spawn(move || call("POST", &url, Some(r#"{"text": "still answered"}"#)));
    std::thread::sleep(Duration::from_millis(400));
    assert!(Command::new("kill").args(["-TERM", &s.child.id().to_string()]).status().unwrap().success());
    let (st, v) = pending.join().unwrap();
    assert_eq!(st, 200, "{v}");
    assert!(v["logits"].is_array());
    assert!(s.child.wait().unwrap().success());
}

#[test]
fn a_failing_request_gets_500_and_the_server_keeps_serving() {
    let Some(base) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("mismatched");
    common::server::tiny_model(&base, &model, 2000);
    let s = start(&model, &[]);
    let url = |p: &str| format!("{}{p}", s.base);
    let ok = r#"{"text": "a"}"#;
    assert_eq!(call("POST", &url("/predict"), Some(ok)).0, 200);
    let (st, err) = call("POST", &url("/predict"), Some(r#"{"text": "zebra"}"#));
    assert_eq!(st, 500, "{err}");
    assert!(err["error"].as_str().unwrap().contains("the model failed on this input"), "{err}");
    for _ in 0..3 {
        assert_eq!(call("POST", &url("/predict"), Some(ok)).0, 200, "the worker survives");
    }
    assert_eq!(call("GET", &url("/health"), None), (200, serde_json::json!({ "status": "ok" })));
    drop(s);

    // A max_seq_length beyond the model's positions is refused when the model loads.
    let o = finetune().args(["serve", "--port", "0", "--max-seq-length", "1024", "--model"]).arg(&model).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("max_seq_length 1024") && stderr.contains("max_position_embeddings"), "{stderr}");
}
