//! SQuAD's official evaluation rules, each on hand-computed cases, plus a property test (EM ≤ F1)
//! and the `finetune squad-eval` command end to end on small files.
use finetune::eval::squad::{evaluate, exact_v1, f1_v1, f1_v2, normalize_answer, Question};
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn q(id: &str, answers: &[&str]) -> Question {
    Question { id: id.into(), answers: answers.iter().map(|s| s.to_string()).collect() }
}

#[test]
fn normalisation_follows_the_official_order() {
    // lower → drop punctuation → articles → whitespace.
    assert_eq!(normalize_answer("The  Cat's, hat!"), "cats hat");
    assert_eq!(normalize_answer("an apple a day"), "apple day");
    // Articles only as whole words; punctuation goes first, so "a-b" is the word "ab".
    assert_eq!(normalize_answer("Theory of a-b"), "theory of ab");
    // `_` is punctuation (string.punctuation), not a word character that survives.
    assert_eq!(normalize_answer("the_a"), "thea");
    assert_eq!(normalize_answer("A"), "");
    assert_eq!(normalize_answer("Über\tCafé —  naïve"), "über café — naïve");
}

#[test]
fn exact_match_and_f1_of_single_answers() {
    assert_eq!(exact_v1("the Eiffel Tower", "Eiffel tower."), 1.0);
    assert_eq!(exact_v1("Eiffel", "Eiffel tower"), 0.0);
    // [big, red, dog] vs [red, dog, barks]: 2 shared → P = R = 2/3.
    assert!((f1_v1("the big red dog", "red dog barks") - 2.0 / 3.0).abs() < 1e-12);
    // Multiset intersection: [x, x, y] ∩ [x, y, y] = {x, y}.
    assert!((f1_v1("x x y", "x y y") - 2.0 / 3.0).abs() < 1e-12);
    // P = 1/1, R = 1/4 → 2·1·0.25/1.25 = 0.4.
    assert!((f1_v1("paris", "paris france europe earth") - 0.4).abs() < 1e-12);
    assert_eq!(f1_v1("london", "paris"), 0.0);
    // v1.1: both sides normalise to nothing → EM 1 but F1 0 (no shared token).
    assert_eq!((exact_v1("the", "a"), f1_v1("the", "a")), (1.0, 0.0));
    // v2.0: when either side is empty, F1 is whether both are.
    assert_eq!(f1_v2("the", "a"), 1.0);
    assert_eq!(f1_v2("", "paris"), 0.0);
    assert_eq!(f1_v2("paris", ""), 0.0);
}

#[test]
fn v1_takes_the_best_gold_and_counts_missing_predictions_as_zero() {
    let qs = [q("1", &["Paris", "the city of Paris"]), q("2", &["Seine river"]), q("3", &["1889"])];
    let preds = map(json!({ "1": "city of Paris", "2": "the Seine" }));
    let r = evaluate(&qs, &preds, false, None, 1.0);
    // q1: EM 1 (second gold), F1 1; q2: EM 0, F1 = 2·(1/1)(1/2)/(1.5) = 2/3; q3 missing: 0.
    assert!((r["exact_match"].as_f64().unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert!((r["f1"].as_f64().unwrap() - 100.0 * (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-9);
    assert_eq!(r.as_object().unwrap().len(), 2);
}

#[test]
fn v2_no_answer_rules_breakdown_and_threshold() {
    // q4's only gold normalises to empty: it is dropped and the gold becomes [""].
    let qs = [q("1", &["Paris"]), q("2", &[]), q("3", &["Rome"]), q("4", &["The"])];
    let preds = map(json!({ "1": "Paris", "2": "x", "3": "Milan", "4": "" }));
    let r = evaluate(&qs, &preds, true, None, 1.0);
    assert_eq!(r["total"], 4);
    assert!((r["exact"].as_f64().unwrap() - 50.0).abs() < 1e-9); // q1, q4
    assert_eq!((r["HasAns_total"].clone(), r["NoAns_total"].clone()), (json!(3), json!(1)));
    assert!((r["HasAns_exact"].as_f64().unwrap() - 200.0 / 3.0).abs() < 1e-9);
    assert_eq!(r["NoAns_exact"], 0.0);
    // A no-answer score above the threshold turns a prediction into "no answer".
    let na = map(json!({ "1": 0.1, "2": 0.9, "3": 0.5, "4": 0.0 }));
    let r = evaluate(&qs, &preds, true, Some(&na), 0.6);
    assert_eq!(r["NoAns_exact"], 100.0);
    assert!((r["exact"].as_f64().unwrap() - 75.0).abs() < 1e-9);

    // The official threshold sweep, by hand: start from 1 unanswerable question counted right;
    // by increasing no-answer score: q4 (0.0, has "answer" → +1 → 2, best, thresh 0.0),
    // q1 (0.1, +1 → 3, best, thresh 0.1), q3 (0.5, +0), q2 (0.9, wrong non-empty → −1).
    let r = evaluate(&qs, &preds, true, Some(&na), 1.0);
    assert!((r["best_exact"].as_f64().unwrap() - 75.0).abs() < 1e-9);
    assert_eq!(r["best_exact_thresh"], 0.1);
    assert!((r["best_f1"].as_f64().unwrap() - 75.0).abs() < 1e-9);
}

#[test]
fn exact_match_never_exceeds_f1() {
    let vocab = ["the", "a", "an", "Cat", "cat", "dog", ",", ".", "big", "Ünï", "x-y", "  ", "an_", "The."];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let text = |rng: &mut rand_chacha::ChaCha8Rng| (0..rng.gen_range(0..5)).map(|_| vocab[rng.gen_range(0..vocab.len())]).collect::<Vec<_>>().join(" ");
    for _ in 0..5000 {
        let (p, g) = (text(&mut rng), text(&mut rng));
        assert!(exact_v1(&p, &g) <= f1_v2(&p, &g), "v2: {p:?} vs {g:?}");
        // v1.1's one exception is a gold that normalises to nothing (EM 1, F1 0).
        if !normalize_answer(&g).is_empty() {
            assert!(exact_v1(&p, &g) <= f1_v1(&p, &g), "v1.1: {p:?} vs {g:?}");
        }
        // Per question (max over golds) the same holds.
        let qs = [Question { id: "q".into(), answers: vec![g.clone(), "cat dog".into()] }];
        let r = evaluate(&qs, &map(json!({ "q": p })), true, None, 1.0);
        assert!(r["exact"].as_f64().unwrap() <= r["f1"].as_f64().unwrap());
    }
}

#[test]
fn squad_eval_command_and_bad_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("dev.json");
    std::fs::write(&data, json!({ "version": "1.1", "data": [{ "title": "t", "paragraphs": [{ "context": "Paris is in France.", "qas": [
        { "id": "a", "question": "Where?", "answers": [{ "text": "France", "answer_start": 12 }] },
        { "id": "b", "question": "What?", "answers": [{ "text": "Paris", "answer_start": 0 }] }
    ] }] }] }).to_string()).unwrap();
    let preds = tmp.path().join("predictions.json");
    std::fs::write(&preds, r#"{"a": "france", "b": "Lyon"}"#).unwrap();
    let run = |args: &[&std::path::Path]| std::process::Command::new(env!("CARGO_BIN_EXE_finetune")).arg("squad-eval").arg("--data").arg(args[0]).arg("--predictions").arg(args[1]).output().unwrap();
    let o = run(&[&data, &preds]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&std::fs::read(tmp.path().join("eval_results.json")).unwrap()).unwrap();
    assert_eq!(r, json!({ "exact_match": 50.0, "f1": 50.0 }));

    std::fs::write(&preds, r#"{"a": 3}"#).unwrap();
    let err = String::from_utf8_lossy(&run(&[&data, &preds]).stderr).to_string();
    assert!(err.contains("predictions.json") && err.contains("must be a string"), "{err}");
    std::fs::write(&data, r#"{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "answers": []}]}]}]}"#).unwrap();
    let err = String::from_utf8_lossy(&run(&[&data, &preds]).stderr).to_string();
    assert!(err.contains("data[0].paragraphs[0].qas[0]: missing field `question`"), "{err}");
    std::fs::write(&data, r#"{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "#).unwrap();
    let err = String::from_utf8_lossy(&run(&[&data, &preds]).stderr).to_string();
    assert!(err.contains("dev.json") && err.contains("EOF"), "{err}");
    // A repeated question id would be scored once: refused, naming both questions.
    std::fs::write(&data, r#"{"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q", "answers": []}, {"id": "x", "question": "r", "answers": []}]}]}]}"#).unwrap();
    let err = String::from_utf8_lossy(&run(&[&data, &preds]).stderr).to_string();
    assert!(err.contains("qas[1]: question id `x` is also data[0].paragraphs[0].qas[0]'s"), "{err}");
}
