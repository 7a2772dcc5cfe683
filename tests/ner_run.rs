//! `finetune ner` end to end on a tiny checkpoint (tests/fixtures/families/electra) and a small
//! CoNLL file: the outputs (HF token-classification directory, run_ner's metric names,
//! predictions.txt for conlleval), its report row, `ner eval` of the saved model, exact resume, the
//! lexicon baseline, and `predict` returning entities.
use serde_json::Value;
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

#[test]
fn ner_trains_saves_evaluates_resumes_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    std::fs::write(tmp.path().join("train.txt"), TRAIN).unwrap();
    std::fs::write(tmp.path().join("dev.txt"), DEV).unwrap();
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
