//! Entity-level scores against seqeval itself (tools/make_seqeval_golden.py: 255 hand-made and
//! random IOB1 / IOB2 / mixed cases, ill-formed ones included): micro precision, recall, F1,
//! token accuracy and per-type scores equal to 1e-12.
use finetune::eval::seqeval::{entities, score};
use serde_json::Value;

fn tags(v: &Value) -> Vec<Vec<String>> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn scores_equal_seqeval_on_every_golden_case() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/seqeval/golden.json");
    let golden: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 200);
    let close = |what: &str, a: f64, b: &Value, i: usize| {
        let b = b.as_f64().unwrap();
        assert!((a - b).abs() <= 1e-12, "case {i}: {what} {a} vs seqeval {b}: {}", cases[i]);
    };
    for (i, c) in cases.iter().enumerate() {
        let s = score(&tags(&c["true"]), &tags(&c["pred"]));
        close("precision", s.overall.precision, &c["precision"], i);
        close("recall", s.overall.recall, &c["recall"], i);
        close("f1", s.overall.f1, &c["f1"], i);
        close("accuracy", s.accuracy, &c["accuracy"], i);
        assert_eq!(s.overall.support as u64, c["report_micro"][3].as_u64().unwrap(), "case {i}");
        let per_type = c["per_type"].as_object().unwrap();
        assert_eq!(s.per_type.keys().collect::<Vec<_>>(), per_type.keys().collect::<Vec<_>>(), "case {i}");
        for (t, want) in per_type {
            let got = &s.per_type[t];
            close(&format!("{t} precision"), got.precision, &want[0], i);
            close(&format!("{t} recall"), got.recall, &want[1], i);
            close(&format!("{t} f1"), got.f1, &want[2], i);
            assert_eq!(got.support as u64, want[3].as_u64().unwrap(), "case {i}: {t} support");
        }
    }
}

#[test]
fn conlleval_chunking_of_ill_formed_sequences() {
    let e = |s: &[&str]| entities(&[s.iter().map(|t| t.to_string()).collect::<Vec<_>>()]);
    // I- after O begins an entity; I- of another type ends one and begins the next.
    assert_eq!(e(&["O", "I-PER", "I-PER", "I-LOC"]), [("PER".into(), 1, 2), ("LOC".into(), 3, 3)]);
    // IOB1: B- separates two adjacent entities of one type.
    assert_eq!(e(&["I-MISC", "B-MISC", "I-MISC"]), [("MISC".into(), 0, 0), ("MISC".into(), 1, 2)]);
    // Entities never run across sentences.
    let two = entities(&[vec!["I-PER".to_string()], vec!["I-PER".to_string()]]);
    assert_eq!(two, [("PER".into(), 0, 0), ("PER".into(), 2, 2)]);
}
