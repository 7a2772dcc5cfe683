//! QA windows and offsets with the real tokenizer: a context longer than max_seq_length is split
//! into overlapping windows, the answer is labelled in a later window and recovered from it by
//! post-processing, and token offsets slice back the exact original text, non-ASCII included.
mod common;
use finetune::data::qa_features::{build, window_tokenizer, QaConfig};
use finetune::data::squad::{Answer, SquadExample};
use finetune::data::tokenize::load_tokenizer;
use finetune::eval::qa_post::{postprocess, PostConfig};

fn example(context: &str, answer: &str) -> SquadExample {
    let start = context.find(answer).unwrap();
    SquadExample {
        id: "q1".into(),
        title: String::new(),
        context: context.into(),
        question: "Where did the naïve café owner finally move?".into(),
        answers: vec![Answer { text: answer.into(), answer_start: context[..start].chars().count() }],
        is_impossible: false,
        plausible_answers: vec![],
    }
}

#[test]
fn long_context_answer_is_found_in_a_later_window() {
    let Some(model) = common::model_dir() else { return };
    let base = load_tokenizer(&model).unwrap();
    let cfg = QaConfig { max_seq_length: 64, doc_stride: 16, max_query_length: 8 };
    let tok = window_tokenizer(&base, cfg).unwrap();
    let filler = "Der Kaffee in München schmeckt anders als in Paris — ganz sicher. ".repeat(12);
    let answer = "Zürich’s old town (旧城区)";
    let ctx = format!("{filler}After years, the owner moved to {answer} with the espresso machine. {filler}");
    let ex = example(&ctx, answer);
    let feats = build(&tok, std::slice::from_ref(&ex), cfg, true).unwrap();
    assert!(feats.mismatched_answers.is_empty());
    let f = &feats.features;
    assert!(f.len() > 3, "{} windows", f.len());
    assert!(f.iter().all(|w| w.features.input_ids.len() <= 64));
    // The question was cut to 8 tokens: [CLS] + 8 + [SEP] before the context.
    assert_eq!(f[0].offsets.iter().position(Option::is_some), Some(10));
    // Consecutive windows overlap by doc_stride context tokens.
    let spans: Vec<(usize, usize)> = f.iter().map(|w| {
        let c: Vec<(usize, usize)> = w.offsets.iter().flatten().copied().collect();
        (c[0].0, c[c.len() - 1].1)
    }).collect();
    assert!(spans.windows(2).all(|p| p[1].0 < p[0].1 && p[1].0 > p[0].0), "{spans:?}");
    // Labelled only where the whole answer fits, never in the first window; offsets give it back.
    let labelled: Vec<usize> = (0..f.len()).filter(|&i| f[i].start_position > 0).collect();
    assert!(!labelled.is_empty() && labelled[0] > 0, "{labelled:?}");
    for &i in &labelled {
        let (s, e) = (f[i].start_position as usize, f[i].end_position as usize);
        assert_eq!(&ctx[f[i].offsets[s].unwrap().0..f[i].offsets[e].unwrap().1], answer);
    }
    // Every context token's offsets are a substring of the original (char boundaries, exact text).
    for w in f {
        for (s, e) in w.offsets.iter().flatten() {
            assert!(ctx.is_char_boundary(*s) && ctx.is_char_boundary(*e) && s < e);
        }
    }

    // Post-processing over all windows: logits peaking at the labelled tokens of a later window.
    let k = labelled[labelled.len() - 1];
    let mut start = vec![vec![0.0f32; 64]; f.len()];
    let mut end = vec![vec![0.0f32; 64]; f.len()];
    start[k][f[k].start_position as usize] = 9.0;
    end[k][f[k].end_position as usize] = 9.0;
    let post = postprocess(std::slice::from_ref(&ex), f, &start, &end, PostConfig { n_best_size: 20, max_answer_length: 30, version_2: false, null_score_diff_threshold: 0.0 });
    assert_eq!(post.predictions["q1"], answer);
    let nbest = post.nbest["q1"].as_array().unwrap();
    assert_eq!(nbest[0]["text"], answer);
    let total: f64 = nbest.iter().map(|c| c["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn mismatched_answers_are_reported_not_trained_on() {
    let Some(model) = common::model_dir() else { return };
    let cfg = QaConfig { max_seq_length: 64, doc_stride: 16, max_query_length: 8 };
    let tok = window_tokenizer(&load_tokenizer(&model).unwrap(), cfg).unwrap();
    let mut wrong = example("Paris is the capital of France.", "France");
    wrong.answers[0].answer_start = 3;
    let mut outside = example("Paris is the capital of France.", "France");
    outside.id = "q2".into();
    outside.answers[0].answer_start = 400;
    let feats = build(&tok, &[wrong, outside], cfg, true).unwrap();
    assert!(feats.features.is_empty());
    assert_eq!(feats.mismatched_answers.len(), 2);
    assert!(feats.mismatched_answers[0].contains("not the answer `France`"), "{:?}", feats.mismatched_answers);
    assert!(feats.mismatched_answers[1].contains("past the end of the context"), "{:?}", feats.mismatched_answers);
    assert!(window_tokenizer(&load_tokenizer(&model).unwrap(), QaConfig { max_seq_length: 64, doc_stride: 60, max_query_length: 8 }).is_err());
}

#[test]
fn squad_command_trains_predicts_and_scores() {
    let Some(model) = common::model_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let ctx = "The Eiffel Tower in Paris was completed in 1889. It was designed by the company of Gustave Eiffel.";
    let qa = |id: &str, q: &str, a: &str| serde_json::json!({ "id": id, "question": q, "answers": [{ "text": a, "answer_start": ctx.find(a).unwrap() }] });
    let data = serde_json::json!({ "version": "1.1", "data": [{ "title": "Eiffel", "paragraphs": [{ "context": ctx, "qas": [
        qa("1", "When was the tower completed?", "1889"), qa("2", "Where is the tower?", "Paris"),
        qa("3", "Whose company designed it?", "Gustave Eiffel"), qa("4", "What was completed in 1889?", "The Eiffel Tower"),
    ] }] }] });
    let file = tmp.path().join("data.json");
    std::fs::write(&file, data.to_string()).unwrap();
    let out = tmp.path().join("run");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args(["squad", "--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16", "--batch-size", "4", "--max-steps", "3", "--save-strategy", "no"])
        .arg("--model").arg(&model).arg("--train-file").arg(&file).arg("--dev-file").arg(&file).arg("--output-dir").arg(&out)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let preds: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&std::fs::read(out.join("predictions.json")).unwrap()).unwrap();
    assert_eq!(preds.len(), 4);
    // Every answer is a span of the context.
    assert!(preds.values().all(|p| ctx.contains(p.as_str().unwrap())), "{preds:?}");
    // eval_results.json is the official evaluation of predictions.json.
    let results: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("eval_results.json")).unwrap()).unwrap();
    let questions: Vec<finetune::eval::squad::Question> = data["data"][0]["paragraphs"][0]["qas"].as_array().unwrap().iter()
        .map(|q| finetune::eval::squad::Question { id: q["id"].as_str().unwrap().into(), answers: vec![q["answers"][0]["text"].as_str().unwrap().into()] })
        .collect();
    let official = finetune::eval::squad::evaluate(&questions, &preds, false, None, 1.0);
    assert_eq!(results["eval_f1"], official["f1"]);
    assert_eq!(results["eval_exact_match"], official["exact_match"]);
    assert!(out.join("nbest_predictions.json").is_file() && out.join("model.safetensors").is_file());
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["architectures"][0], "BertForQuestionAnswering");

    // `squad predict` answers from the saved model with a span of the given context.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_finetune"))
        .args(["squad", "predict", "--context", ctx, "--question", "When was the tower completed?", "--max-seq-length", "64", "--doc-stride", "16", "--max-query-length", "16"])
        .arg("--model").arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(ctx.contains(v["answer"].as_str().unwrap()), "{v}");

    // `finetune predict` on a QA model: JSONL questions in, answers with character offsets out.
    let input = tmp.path().join("questions.jsonl");
    let ctx2 = "Zürich’s café opened in 1901; Über-Chef Anna ran it.";
    std::fs::write(&input, serde_json::json!({ "id": "z", "question": "Who ran the café?", "context": ctx2 }).to_string() + "\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_finetune")).arg("predict").arg("--model").arg(&out).arg("--input").arg(&input).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["id"], "z");
    let (s, e) = (v["offsets"][0].as_u64().unwrap() as usize, v["offsets"][1].as_u64().unwrap() as usize);
    assert_eq!(ctx2.chars().skip(s).take(e - s).collect::<String>(), v["answer"].as_str().unwrap());
}
