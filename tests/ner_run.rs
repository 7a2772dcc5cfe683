//! `finetune ner` end to end on a tiny checkpoint (tests/fixtures/families/electra) and a small
//! CoNLL file: the outputs (HF token-classification directory, run_ner's metric names,
//! predictions.txt for conlleval), its report row, `ner eval` of the saved model, exact resume, the
//! lexicon baseline, `predict` returning entities, and `serve` answering with them.
mod common;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

const TRAIN: &str = "-DOCSTART- -X- O O\n\nEU I-ORG\nrejects O\nGerman I-MISC\ncall O\nto O\nboycott O\nBritish I-MISC\nlamb O\n\nPeter I-PER\nBlackburn I-PER\n\nBRUSSELS I-LOC\n1996-08-22 O\n\nThe O\nEuropean I-ORG\nCommission I-ORG\nsaid O\non O\nThursday O\n\nGermany I-LOC\n's O\nrepresentative O\nWerner I-PER\nZwingmann I-PER\n\n";
const DEV: &str = "-DOCSTART- -X- -X- O\n\nPeter I-PER\nBlackburn I-PER\nvisited O\nBRUSSELS I-LOC\n\nThe O\nEuropean I-ORG\nCommission I-ORG\nand O\nGerman I-MISC\nfarmers O\n\n";

fn finetune(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_finetune")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(o.status.success(), "finetune {args:?}:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into()
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn ner_args<'a>(d: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<String> {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/electra");
    let mut a: Vec<String> = ["ner", "--model", model.to_str().unwrap(), "--train-file", &format!("{d}/train.txt"), "--validation-file", &format!("{d}/dev.txt"), "--output-dir", out, "--batch-size", "2", "--learning-rate", "1e-3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A temporary directory holding `train.txt` and `dev.txt`.
fn data_dir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("train.txt"), TRAIN).unwrap();
    std::fs::write(tmp.path().join("dev.txt"), DEV).unwrap();
    tmp
}

#[test]
fn ner_trains_saves_evaluates_resumes_and_predicts() {
    let tmp = data_dir();
    let d = tmp.path().to_str().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let a = ner_args(d, out, extra);
        finetune(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let full = format!("{d}/full");
    let steps = ["--max-steps", "6", "--save-steps", "3"];
    run(&full, &steps);
    let full = Path::new(&full);
    let results = json(&full.join("eval_results.json"));
    for k in ["eval_precision", "eval_recall", "eval_f1", "eval_accuracy", "eval_PER_f1", "eval_LOC_f1", "eval_ORG_f1", "eval_MISC_f1", "eval_loss"] {
        assert!(results[k].is_number(), "{k} missing: {results}");
    }
    let cfg = json(&full.join("config.json"));
    assert_eq!(cfg["architectures"][0], "ElectraForTokenClassification");
    assert_eq!(cfg["id2label"]["0"], "B-LOC");
    assert_eq!(cfg["label2id"]["O"], 6, "the sorted IOB2 training tags: B-LOC B-MISC B-ORG B-PER I-ORG I-PER O");
    let preds = std::fs::read_to_string(full.join("predictions.txt")).unwrap();
    assert!(preds.starts_with("Peter B-PER ") && preds.split("\n\n").count() == 3, "{preds}");

    // The report gives the run a NER row with the BERT paper's reference and the lexicon baseline.
    let report = finetune(&["report", full.to_str().unwrap()]);
    let row = report.lines().find(|l| l.contains(" NER |")).unwrap_or_else(|| panic!("no NER row:\n{report}"));
    assert!(row.contains("| f1 |") && row.contains("96.40") && row.contains("100.00"), "{row}");

    // `ner eval` of the saved model reproduces the run's final scores.
    let eval_dir = format!("{d}/eval");
    finetune(&["ner", "eval", "--model", full.to_str().unwrap(), "--file", &format!("{d}/dev.txt"), "--output-dir", &eval_dir]);
    let again = json(&Path::new(&eval_dir).join("eval_results.json"));
    assert_eq!(again["eval_f1"], results["eval_f1"]);
    assert_eq!(std::fs::read_to_string(Path::new(&eval_dir).join("predictions.txt")).unwrap(), preds);

    // Its int8 copy (`finetune quantize`) is scored by `ner eval` too.
    let int8 = format!("{d}/int8");
    finetune(&["quantize", "--model", full.to_str().unwrap(), "--output-dir", &int8]);
    assert_eq!(json(&Path::new(&int8).join("config.json"))["quantization_config"]["quant_method"], "finetune_dynamic_int8");
    let int8_eval = format!("{d}/int8-eval");
    finetune(&["ner", "eval", "--model", &int8, "--file", &format!("{d}/dev.txt"), "--output-dir", &int8_eval]);
    let scored = json(&Path::new(&int8_eval).join("eval_results.json"));
    assert!(scored["eval_f1"].is_number() && scored["eval_accuracy"].as_f64().unwrap() > 0.0, "{scored}");

    // Killed after its step-3 checkpoint, resumed: the same model.
    let part = format!("{d}/part");
    run(&part, &steps);
    std::fs::remove_dir_all(Path::new(&part).join("checkpoint-6")).unwrap();
    std::fs::remove_file(Path::new(&part).join("eval_results.json")).unwrap();
    let mut resumed = steps.to_vec();
    resumed.push("--resume");
    run(&part, &resumed);
    for f in ["model.safetensors", "eval_results.json"] {
        assert!(std::fs::read(full.join(f)).unwrap() == std::fs::read(Path::new(&part).join(f)).unwrap(), "{f} differs after resuming");
    }

    // The lexicon baseline tags the training data's unambiguous entities where they recur.
    let base = format!("{d}/baseline");
    run(&base, &["--baseline", "lexicon"]);
    let b = json(&Path::new(&base).join("eval_results.json"));
    // Peter Blackburn (PER), European Commission (ORG), German (MISC) recur; BRUSSELS too.
    assert_eq!((b["eval_precision"].as_f64(), b["eval_recall"].as_f64()), (Some(1.0), Some(1.0)), "{b}");

    // predict on raw text: entities with character offsets into the text.
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, "{\"text\": \"Peter Blackburn visited Zürich.\"}\n").unwrap();
    let line: Value = serde_json::from_str(finetune(&["predict", "--model", full.to_str().unwrap(), "--input", input.to_str().unwrap()]).trim()).unwrap();
    let text = "Peter Blackburn visited Zürich.";
    for e in line["entities"].as_array().unwrap() {
        let (s, t) = (e["start"].as_u64().unwrap() as usize, e["end"].as_u64().unwrap() as usize);
        assert!(s < t && t <= text.chars().count(), "{e}");
        assert!(["PER", "ORG", "LOC", "MISC"].contains(&e["entity_group"].as_str().unwrap()), "{e}");
    }
    assert_eq!(line["logits"].as_array().unwrap()[0].as_array().unwrap().len(), 7);
}

/// `finetune serve` on a token classifier answers with the entities `predict` finds, one text or a
/// batch; a text pair, or a text longer than the model's positions, is the client's error (and in
/// `predict`, an error naming the input), never a crash.
#[test]
fn ner_model_serves_the_entities_predict_finds() {
    let tmp = data_dir();
    let d = tmp.path().to_str().unwrap();
    let out = format!("{d}/run");
    let a = ner_args(d, &out, &["--max-steps", "4", "--save-strategy", "no"]);
    finetune(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let texts = ["Peter Blackburn visited Zürich.", "The European Commission met German farmers."];
    let input = tmp.path().join("in.jsonl");
    std::fs::write(&input, texts.iter().map(|t| json!({ "text": t }).to_string() + "\n").collect::<String>()).unwrap();
    let predicted: Vec<Value> = finetune(&["predict", "--model", &out, "--input", input.to_str().unwrap(), "--batch-size", "2"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(predicted.len(), 2);

    let s = common::server::start(Path::new(&out), &[]);
    let url = |p: &str| format!("{}{p}", s.base);
    let (st, meta) = common::server::call("GET", &url("/metadata"), None);
    assert_eq!((st, &meta["task"], meta["labels"].as_array().map(Vec::len), &meta["max_tokens"]), (200, &json!("ner"), Some(7), &json!(26)), "{meta}");
    let (st, one) = common::server::call("POST", &url("/predict"), Some(&json!({ "text": texts[0] }).to_string()));
    assert_eq!(st, 200, "{one}");
    assert_eq!((&one["entities"], &one["logits"]), (&predicted[0]["entities"], &predicted[0]["logits"]));
    let (st, both) = common::server::call("POST", &url("/predict"), Some(&json!({ "inputs": texts }).to_string()));
    assert_eq!(st, 200, "{both}");
    for (got, want) in both["predictions"].as_array().unwrap().iter().zip(&predicted) {
        assert_eq!(got["entities"], want["entities"]);
    }

    let (st, e) = common::server::call("POST", &url("/predict"), Some(&json!({ "text": "Peter", "text_pair": "Blackburn" }).to_string()));
    assert!(st == 422 && e["error"].as_str().unwrap().contains("text_pair"), "{st} {e}");
    let long = "Peter Blackburn visited Zürich and BRUSSELS . ".repeat(5);
    let (st, e) = common::server::call("POST", &url("/predict"), Some(&json!({ "inputs": ["Peter", long] }).to_string()));
    assert!(st == 422 && e["error"].as_str().unwrap().starts_with("inputs[1]:") && e["error"].as_str().unwrap().contains("at most 26"), "{st} {e}");
    assert_eq!(common::server::call("GET", &url("/health"), None).0, 200, "the server still serves");

    std::fs::write(&input, json!({ "text": "fine" }).to_string() + "\n" + &json!({ "id": "long-one", "text": long }).to_string() + "\n").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_finetune")).args(["predict", "--model", &out, "--input", input.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("in.jsonl") && err.contains("long-one") && err.contains("at most 26"), "{err}");
}
