//! The encoder families beyond BERT against transformers, on the tiny random checkpoints of
//! tools/make_family_golden.py (tests/fixtures/families/<model_type>/): token ids and offsets of
//! the fast tokenizer; the logits, loss and every parameter's gradient norm of the
//! sequence-classification, regression, question-answering and token-classification heads, whose
//! fresh weights are transformers' draws after the same seed.
mod common;
use finetune::data::batch::{collate, Batch};
use finetune::data::classify::ProblemType;
use finetune::data::tokenize::{load_tokenizer, TextEncoder};
use finetune::model::{checkpoint, config::BertConfig, heads::QuestionAnswering};
use serde_json::Value;
use std::path::PathBuf;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Fixture names: a `model_type`, or a variant of one (two DeBERTa-v2 and two ModernBERT option sets).
const FAMILIES: &[&str] = &["roberta", "xlm-roberta", "electra", "distilbert", "deberta-v3", "deberta-v2", "modernbert", "modernbert-bias"];

fn dir(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families").join(family)
}

fn golden(family: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir(family).join("golden.json")).unwrap()).unwrap()
}

fn floats(v: &Value) -> Tensor {
    let flat: Vec<f32> = match v {
        Value::Array(rows) if rows.first().is_some_and(Value::is_array) => rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32)).collect(),
        Value::Array(xs) => xs.iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        x => vec![x.as_f64().unwrap() as f32],
    };
    Tensor::from_slice(&flat)
}

fn close(what: &str, ours: &Tensor, theirs: &Tensor, tol: f64) {
    let d = (ours.flatten(0, -1) - theirs.flatten(0, -1)).abs().max().double_value(&[]);
    assert!(d <= tol, "{what}: max abs diff {d}");
}

/// The golden pairs tokenised by our encoder, checked against transformers' ids, and batched.
fn batch(family: &str, g: &Value) -> Batch {
    let enc = TextEncoder::new(load_tokenizer(&dir(family)).unwrap(), g["max_seq_length"].as_u64().unwrap() as usize).unwrap();
    let texts: Vec<(String, Option<String>)> = serde_json::from_value(g["texts"].clone()).unwrap();
    let feats = enc.encode(texts.iter().map(|(a, b)| (a.as_str(), b.as_deref()))).unwrap();
    let ids: Vec<Vec<i64>> = serde_json::from_value(g["input_ids"].clone()).unwrap();
    for (i, f) in feats.iter().enumerate() {
        assert_eq!(f.input_ids, ids[i], "{family}: input_ids of pair {i}");
        if let Some(types) = g["token_type_ids"][i].as_array() {
            assert_eq!(f.token_type_ids, types.iter().map(|t| t.as_i64().unwrap()).collect::<Vec<_>>(), "{family}: token_type_ids of pair {i}");
        }
    }
    let idx: Vec<usize> = (0..feats.len()).collect();
    collate(&feats, &idx, enc.pad_id, 1, Device::Cpu)
}

/// Every parameter's gradient norm equals transformers' (names are transformers').
fn grads_match(family: &str, head: &str, vs: &VarStore, g: &Value) {
    let theirs = g["grad_norms"].as_object().unwrap();
    let ours = vs.variables();
    assert_eq!(ours.len(), theirs.len(), "{family} {head}: parameter count");
    for (name, norm) in theirs {
        let v = ours.get(name).unwrap_or_else(|| panic!("{family} {head}: no parameter {name}"));
        let got = v.grad().to_kind(Kind::Double).norm().double_value(&[]);
        let want = norm.as_f64().unwrap();
        assert!((got - want).abs() <= 1e-4 * want.max(1e-3), "{family} {head}: gradient norm of {name}: {got} vs {want}");
    }
}

/// Ours are byte offsets into each text (what Rust slices by), transformers' are character
/// offsets: the same spans, counted differently.
fn char_offsets(e: &tokenizers::Encoding, a: &str, b: Option<&str>) -> Vec<(usize, usize)> {
    e.get_offsets()
        .iter()
        .zip(e.get_sequence_ids())
        .map(|(&(s, t), seq)| {
            let text = if seq == Some(1) { b.unwrap() } else { a };
            (text[..s].chars().count(), text[..t].chars().count())
        })
        .collect()
}

#[test]
fn tokenizers_give_transformers_ids_and_offsets() {
    for family in FAMILIES {
        let g = golden(family);
        let mut tok = load_tokenizer(&dir(family)).unwrap();
        let max_length = g["max_seq_length"].as_u64().unwrap() as usize;
        tok.with_truncation(Some(tokenizers::TruncationParams { max_length, strategy: tokenizers::TruncationStrategy::LongestFirst, ..Default::default() })).unwrap();
        let texts: Vec<(String, Option<String>)> = serde_json::from_value(g["texts"].clone()).unwrap();
        let offsets: Vec<Vec<(usize, usize)>> = serde_json::from_value(g["offsets"].clone()).unwrap();
        for (i, (a, b)) in texts.iter().enumerate() {
            let e = match b {
                Some(b) => tok.encode((a.as_str(), b.as_str()), true),
                None => tok.encode(a.as_str(), true),
            }
            .unwrap();
            assert_eq!(e.get_ids().iter().map(|&x| x as i64).collect::<Vec<_>>(), serde_json::from_value::<Vec<i64>>(g["input_ids"][i].clone()).unwrap(), "{family} pair {i}");
            assert_eq!(char_offsets(&e, a, b.as_deref()), offsets[i], "{family}: offsets of pair {i}");
        }
        // The encoder pads with the family's <pad>, which RoBERTa's position ids depend on.
        let cfg = BertConfig::from_file(&dir(family).join("config.json")).unwrap();
        assert_eq!(TextEncoder::new(tok, 16).unwrap().pad_id, cfg.pad_token_id, "{family}");
    }
}

/// ModernBERT's head with `classifier_bias` and `norm_bias`, the same under both tasks.
const MODERNBERT_BIAS_HEAD: &[&str] = &["classifier.bias", "classifier.weight", "head.dense.bias", "head.dense.weight", "head.norm.bias", "head.norm.weight"];

#[test]
fn classification_heads_match_transformers() {
    for family in FAMILIES {
        let g = golden(family);
        let b = batch(family, &g);
        let cfg = BertConfig::from_file(&dir(family).join("config.json")).unwrap();
        for (head, num_labels, problem) in [("seq_cls", 3, ProblemType::SingleLabel), ("regression", 1, ProblemType::Regression)] {
            let gh = &g[head];
            tch::manual_seed(42);
            let (vs, net, report) = checkpoint::load_sequence_classifier(&dir(family), &cfg, num_labels, Device::Cpu).unwrap();
            let new: &[&str] = match *family {
                "distilbert" => &["classifier.bias", "classifier.weight", "pre_classifier.bias", "pre_classifier.weight"],
                "deberta-v3" | "deberta-v2" => &["classifier.bias", "classifier.weight", "pooler.dense.bias", "pooler.dense.weight"],
                "modernbert" => &["classifier.bias", "classifier.weight", "head.dense.weight", "head.norm.weight"],
                "modernbert-bias" => MODERNBERT_BIAS_HEAD,
                _ => &["classifier.dense.bias", "classifier.dense.weight", "classifier.out_proj.bias", "classifier.out_proj.weight"],
            };
            assert_eq!(report.newly_initialised, new, "{family}");
            let net = net.with_problem(problem, None);
            let logits = net.forward(&b.input_ids, &b.token_type_ids, &b.attention_mask, false);
            close(&format!("{family} {head} logits"), &logits, &floats(&gh["logits"]), 1e-5);
            let labels = match problem {
                ProblemType::Regression => floats(&gh["labels"]),
                _ => Tensor::from_slice(&serde_json::from_value::<Vec<i64>>(gh["labels"].clone()).unwrap()),
            };
            let loss = net.loss(&logits, &labels);
            close(&format!("{family} {head} loss"), &loss, &floats(&gh["loss"]), 1e-6);
            loss.backward();
            grads_match(family, head, &vs, gh);
        }
    }
}

#[test]
fn question_answering_head_matches_transformers() {
    for family in FAMILIES {
        let g = golden(family);
        let gq = &g["qa"];
        let b = batch(family, &g);
        let cfg = BertConfig::from_file(&dir(family).join("config.json")).unwrap();
        tch::manual_seed(42);
        let (vs, net, report) = checkpoint::load_question_answering(&dir(family), &cfg, Device::Cpu).unwrap();
        let new: &[&str] = match *family {
            "modernbert" => &["classifier.bias", "classifier.weight", "head.dense.weight", "head.norm.weight"],
            "modernbert-bias" => MODERNBERT_BIAS_HEAD,
            _ => &["qa_outputs.bias", "qa_outputs.weight"],
        };
        assert_eq!(report.newly_initialised, new, "{family}");
        let (start, end) = net.forward(&b.input_ids, &b.token_type_ids, &b.attention_mask, false);
        let mask = b.attention_mask.to_kind(Kind::Bool);
        for i in 0..start.size()[0] {
            let real = |t: &Tensor| t.get(i).masked_select(&mask.get(i));
            close(&format!("{family} start logits {i}"), &real(&start), &floats(&gq["start_logits"][i as usize]), 1e-5);
            close(&format!("{family} end logits {i}"), &real(&end), &floats(&gq["end_logits"][i as usize]), 1e-5);
        }
        let pos = |k: &str| Tensor::from_slice(&serde_json::from_value::<Vec<i64>>(gq[k].clone()).unwrap());
        let loss = QuestionAnswering::loss(&start, &end, &pos("start_positions"), &pos("end_positions"));
        close(&format!("{family} qa loss"), &loss, &floats(&gq["loss"]), 1e-6);
        loss.backward();
        grads_match(family, "qa", &vs, gq);
    }
}

/// `…ForTokenClassification` (tools/make_token_cls_golden.py): logits of the real positions, the
/// loss over labelled ones and every gradient, the fresh `classifier` (and ModernBERT's `head`)
/// drawn as transformers draws it.
#[test]
fn token_classification_head_matches_transformers() {
    for family in FAMILIES {
        let g = golden(family);
        let t: Value = serde_json::from_slice(&std::fs::read(dir(family).join("token_cls.json")).unwrap()).unwrap();
        let b = batch(family, &g);
        let cfg = BertConfig::from_file(&dir(family).join("config.json")).unwrap();
        tch::manual_seed(42);
        let num_labels = t["num_labels"].as_i64().unwrap();
        let (vs, net, report) = checkpoint::load_token_classifier(&dir(family), &cfg, num_labels, Device::Cpu).unwrap();
        assert!(report.newly_initialised.iter().all(|n| n.starts_with("classifier.") || n.starts_with("head.")), "{family}: {:?}", report.newly_initialised);
        let logits = net.forward(&b.input_ids, &b.token_type_ids, &b.attention_mask, false);
        let mask = b.attention_mask.to_kind(Kind::Bool);
        for i in 0..logits.size()[0] {
            let real = logits.get(i).index_select(0, &mask.get(i).nonzero().squeeze_dim(1));
            close(&format!("{family} token logits {i}"), &real, &floats(&t["logits"][i as usize]), 1e-5);
        }
        let labels: Vec<Vec<i64>> = serde_json::from_value(t["labels"].clone()).unwrap();
        let loss = net.loss(&logits, &Tensor::from_slice2(&labels));
        close(&format!("{family} token loss"), &loss, &floats(&t["loss"]), 1e-6);
        loss.backward();
        grads_match(family, "token_cls", &vs, &t);
    }
}

#[test]
fn an_unknown_model_type_lists_the_supported_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("config.json");
    std::fs::write(&p, r#"{"model_type": "gpt2", "vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4}"#).unwrap();
    let e = BertConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("gpt2") && e.contains("bert, roberta, xlm-roberta, electra, distilbert, deberta-v2, modernbert"), "{e}");
}

/// run_qa.py's windows and answer labels over byte-level BPE and Unigram offsets, on a context with
/// umlauts, a typographic apostrophe and CJK: the same ids and the same start/end tokens.
#[test]
fn qa_windows_and_answer_spans_match_run_qa() {
    use finetune::data::qa_features::{build, window_tokenizer, QaConfig};
    use finetune::data::squad::{Answer, SquadExample};
    for family in FAMILIES {
        let g = &golden(family)["qa_features"];
        let context = g["context"].as_str().unwrap();
        let examples: Vec<SquadExample> = g["examples"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let answer = e["answer"].as_str().unwrap();
                SquadExample {
                    id: format!("q{i}"),
                    title: String::new(),
                    context: context.into(),
                    question: e["question"].as_str().unwrap().into(),
                    answers: vec![Answer { text: answer.into(), answer_start: context[..context.find(answer).unwrap()].chars().count() }],
                    is_impossible: false,
                    plausible_answers: vec![],
                }
            })
            .collect();
        let c = &g["config"];
        let cfg = QaConfig { max_seq_length: c["max_seq_length"].as_u64().unwrap() as usize, doc_stride: c["doc_stride"].as_u64().unwrap() as usize, max_query_length: c["max_query_length"].as_u64().unwrap() as usize };
        let tok = window_tokenizer(&load_tokenizer(&dir(family)).unwrap(), cfg).unwrap();
        let feats = build(&tok, &examples, cfg, true).unwrap();
        let want = g["windows"].as_array().unwrap();
        assert_eq!(feats.features.len(), want.len(), "{family}: windows");
        assert!(want.iter().filter(|w| w["start_position"].as_i64().unwrap() > 0).count() >= 3, "{family}: the fixture labels answers");
        for (i, (f, w)) in feats.features.iter().zip(want).enumerate() {
            assert_eq!(f.features.input_ids, serde_json::from_value::<Vec<i64>>(w["input_ids"].clone()).unwrap(), "{family}: ids of window {i}");
            assert_eq!((f.start_position, f.end_position), (w["start_position"].as_i64().unwrap(), w["end_position"].as_i64().unwrap()), "{family}: answer of window {i}");
        }
    }
}

fn finetune(args: &[&str]) -> String {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_finetune")).args(args).env("HF_HUB_OFFLINE", "1").output().unwrap();
    assert!(o.status.success(), "finetune {args:?}:\n{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into()
}

/// Each family through the commands: `glue` and `squad` train and save transformers' class for
/// the family, `predict` and `squad predict` answer from the saved models.
#[test]
fn families_run_through_glue_squad_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let ctx = "The Eiffel Tower in Paris was completed in 1889.";
    let qa = |id: &str, q: &str, a: &str| serde_json::json!({ "id": id, "question": q, "answers": [{ "text": a, "answer_start": ctx.find(a).unwrap() }] });
    let data = serde_json::json!({ "version": "1.1", "data": [{ "title": "Eiffel", "paragraphs": [{ "context": ctx, "qas": [
        qa("1", "When?", "1889"), qa("2", "Where?", "Paris"), qa("3", "What?", "The Eiffel Tower"),
    ] }] }] });
    let squad = tmp.path().join("squad.json");
    std::fs::write(&squad, data.to_string()).unwrap();
    for family in FAMILIES {
        let model = dir(family);
        let (m, glue_out, qa_out) = (model.to_str().unwrap(), tmp.path().join(format!("{family}-sst2")), tmp.path().join(format!("{family}-qa")));
        let data_dir = repo.join("examples/glue-tiny");
        finetune(&["glue", "--task", "sst2", "--model", m, "--data-dir", data_dir.to_str().unwrap(), "--max-steps", "3", "--batch-size", "8", "--max-seq-length", "24", "--save-strategy", "no", "--output-dir", glue_out.to_str().unwrap()]);
        let cfg: Value = serde_json::from_slice(&std::fs::read(glue_out.join("config.json")).unwrap()).unwrap();
        let model_type = BertConfig::from_file(&model.join("config.json")).unwrap().model_type.unwrap();
        let class = match model_type.as_str() {
            "roberta" => "Roberta",
            "xlm-roberta" => "XLMRoberta",
            "electra" => "Electra",
            "deberta-v2" => "DebertaV2",
            "modernbert" => "ModernBert",
            _ => "DistilBert",
        };
        assert_eq!(cfg["architectures"][0], format!("{class}ForSequenceClassification"));
        assert_eq!(cfg["model_type"], model_type.as_str());
        let input = tmp.path().join("in.jsonl");
        std::fs::write(&input, "{\"text\": \"a gripping, funny film\"}\n").unwrap();
        let pred: Value = serde_json::from_str(finetune(&["predict", "--model", glue_out.to_str().unwrap(), "--input", input.to_str().unwrap()]).trim()).unwrap();
        assert!(pred["label"] == "0" || pred["label"] == "1", "{pred}");

        finetune(&["squad", "--model", m, "--train-file", squad.to_str().unwrap(), "--dev-file", squad.to_str().unwrap(), "--max-seq-length", "24", "--doc-stride", "8", "--max-query-length", "6", "--batch-size", "4", "--max-steps", "2", "--save-strategy", "no", "--output-dir", qa_out.to_str().unwrap()]);
        let cfg: Value = serde_json::from_slice(&std::fs::read(qa_out.join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["architectures"][0], format!("{class}ForQuestionAnswering"));
        let preds: serde_json::Map<String, Value> = serde_json::from_slice(&std::fs::read(qa_out.join("predictions.json")).unwrap()).unwrap();
        assert!(preds.len() == 3 && preds.values().all(|p| ctx.contains(p.as_str().unwrap())), "{preds:?}");
        let answer = finetune(&["squad", "predict", "--model", qa_out.to_str().unwrap(), "--context", ctx, "--question", "When?", "--max-seq-length", "24", "--doc-stride", "8", "--max-query-length", "6"]);
        assert!(answer.contains("answer"), "{answer}");
    }
}

/// The 1,000 inputs of tools/make_family_golden.py's tokenizer check, from the shared data.
fn parity_items() -> Option<Vec<(String, Option<String>)>> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let squad = data.join("squad/train-v1.1.json");
    let glue = common::glue_dir()?;
    if !squad.is_file() {
        eprintln!("SKIP: {} not found", squad.display());
        return None;
    }
    let tsv = |path: PathBuf, n: usize| -> Vec<Vec<String>> {
        std::fs::read_to_string(path).unwrap().lines().skip(1).take(n).map(|l| l.split('\t').map(str::to_string).collect()).collect()
    };
    let mut items: Vec<(String, Option<String>)> = tsv(glue.join("RTE/train.tsv"), 400).into_iter().map(|r| (r[1].clone(), Some(r[2].clone()))).collect();
    items.extend(tsv(glue.join("SST-2/train.tsv"), 300).into_iter().map(|r| (r[0].clone(), None)));
    let v: Value = serde_json::from_slice(&std::fs::read(&squad).unwrap()).unwrap();
    let qas = v["data"].as_array().unwrap().iter().flat_map(|a| a["paragraphs"].as_array().unwrap()).flat_map(|p| {
        p["qas"].as_array().unwrap().iter().map(|q| (q["question"].as_str().unwrap().to_string(), Some(p["context"].as_str().unwrap().to_string())))
    });
    items.extend(qas.take(300));
    Some(items)
}

/// Ids and (character) offsets of 1,000 GLUE and SQuAD inputs, truncated longest-first to 128,
/// equal transformers' fast tokenizers: a digest per input, so a mismatch names the input.
#[test]
fn tokenizers_match_transformers_on_1000_inputs() {
    let Some(items) = parity_items() else { return };
    for family in FAMILIES {
        let want: Vec<String> = serde_json::from_value(golden(family)["parity"].clone()).unwrap();
        assert_parity(family, load_tokenizer(&dir(family)).unwrap(), &items, &want);
    }
}

fn assert_parity(what: &str, mut tok: tokenizers::Tokenizer, items: &[(String, Option<String>)], want: &[String]) {
    use sha2::Digest;
    tok.with_truncation(Some(tokenizers::TruncationParams { max_length: 128, strategy: tokenizers::TruncationStrategy::LongestFirst, ..Default::default() })).unwrap();
    assert_eq!(items.len(), want.len());
    for (i, ((a, b), want)) in items.iter().zip(want).enumerate() {
        let e = match b {
            Some(b) => tok.encode((a.as_str(), b.as_str()), true),
            None => tok.encode(a.as_str(), true),
        }
        .unwrap();
        let text = serde_json::to_string(&(e.get_ids(), char_offsets(&e, a, b.as_deref()))).unwrap();
        let got = finetune::model::download::hex(&sha2::Sha256::digest(text.as_bytes()));
        assert_eq!(&got[..12], want, "{what}: input {i} ({a:?}, {b:?})");
    }
}

/// A DeBERTa-v3-style directory with only `spm.model` (tools/make_spm_golden.py): converted in Rust,
/// as shipped and with `do_lower_case` + `split_by_punct`, it gives DebertaV2TokenizerFast's ids and
/// offsets on the 1,000 inputs and on texts exercising the precompiled normaliser, runs of spaces,
/// a user-defined piece and `[MASK]` (added after the pieces).
#[test]
fn deberta_v3_spm_model_converts_as_transformers_does() {
    let src = dir("deberta-v3-spm");
    let items = parity_items();
    for (name, case) in golden("deberta-v3-spm").as_object().unwrap() {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["spm.model", "special_tokens_map.json"] {
            std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
        }
        let mut config: serde_json::Map<String, Value> = serde_json::from_slice(&std::fs::read(src.join("tokenizer_config.json")).unwrap()).unwrap();
        config.extend(case["options"].as_object().unwrap().clone());
        std::fs::write(tmp.path().join("tokenizer_config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
        let tok = load_tokenizer(tmp.path()).unwrap();
        assert_eq!(tok.token_to_id("[MASK]").map(i64::from), case["mask_id"].as_i64(), "{name}");
        for t in case["texts"].as_array().unwrap() {
            let text = t[0].as_str().unwrap();
            let want: Vec<u32> = serde_json::from_value(t[1].clone()).unwrap();
            assert_eq!(tok.encode(text, true).unwrap().get_ids(), want, "{name}: {text:?}");
        }
        if let Some(items) = &items {
            let want: Vec<String> = serde_json::from_value(case["parity"].clone()).unwrap();
            assert_parity(&format!("spm {name}"), tok, items, &want);
        }
    }
}

/// A file that is not a SentencePiece model is refused with its name.
#[test]
fn a_broken_spm_model_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("spm.model"), b"\xff\xffnot protobuf").unwrap();
    let err = load_tokenizer(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("spm.model") && err.contains("not a SentencePiece model"), "{err}");
}

/// DeBERTa's relative positions, log-bucketed as transformers' `build_relative_position` does, at
/// the fixture's size, at DeBERTa-v3-base's (256 buckets over 512 positions, 600 tokens), and
/// unbucketed.
#[test]
fn deberta_relative_positions_match_transformers() {
    use sha2::Digest;
    for case in golden("deberta-v3")["relative_positions"].as_array().unwrap() {
        let n = |k: &str| case[k].as_i64().unwrap();
        let rel = finetune::model::deberta::relative_positions(n("length"), n("length"), n("buckets"), n("max_position"), Device::Cpu);
        let flat: Vec<i64> = Vec::try_from(rel.flatten(0, -1)).unwrap();
        let got = finetune::model::download::hex(&sha2::Sha256::digest(serde_json::to_string(&flat).unwrap().as_bytes()));
        assert_eq!(got, case["sha256"].as_str().unwrap(), "{case}");
    }
}

/// A ModernBERT masked-LM checkpoint (encoder under `model.`, `head.*`, `decoder.*`), as the hub's
/// are: its `head` goes under the classifier as transformers loads it, only `classifier` is new,
/// and the decoder is reported unused.
#[test]
fn modernbert_masked_lm_checkpoint_lends_its_head() {
    let src = dir("modernbert");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let mut named: Vec<(String, Tensor)> =
        checkpoint::read_safetensors(&src.join("model.safetensors")).unwrap().into_iter().map(|(n, t)| (format!("model.{n}"), t)).collect();
    let dense = Tensor::randn([16, 16], (Kind::Float, Device::Cpu));
    named.push(("head.dense.weight".into(), dense.copy()));
    named.push(("head.norm.weight".into(), Tensor::full([16], 0.5, (Kind::Float, Device::Cpu))));
    named.push(("decoder.bias".into(), Tensor::zeros([300], (Kind::Float, Device::Cpu))));
    checkpoint::write_safetensors(&named, &tmp.path().join("model.safetensors")).unwrap();
    let cfg = BertConfig::from_file(&src.join("config.json")).unwrap();
    let (vs, _, report) = checkpoint::load_sequence_classifier(tmp.path(), &cfg, 2, Device::Cpu).unwrap();
    assert_eq!(report.newly_initialised, ["classifier.bias", "classifier.weight"]);
    assert_eq!(report.unused, ["model.decoder.bias"]);
    assert!(vs.variables()["head.dense.weight"].equal(&dense));
}

/// ModernBERT options this implementation lacks are refused naming the field.
#[test]
fn modernbert_options_it_lacks_are_refused() {
    let base: serde_json::Map<String, Value> = serde_json::from_slice(&std::fs::read(dir("modernbert").join("config.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (key, value, expected) in [
        ("rope_scaling", serde_json::json!({"rope_type": "linear", "factor": 2.0}), "rope_scaling"),
        ("classifier_pooling", serde_json::json!("max"), "classifier_pooling `max`"),
        ("hidden_activation", serde_json::json!("swish"), "hidden_activation `swish`"),
        ("local_attention", serde_json::json!(0), "local_attention"),
        ("mlp_dropout", serde_json::json!(1.5), "mlp_dropout"),
    ] {
        let mut cfg = base.clone();
        cfg.insert(key.into(), value);
        let p = tmp.path().join("config.json");
        std::fs::write(&p, serde_json::to_vec(&cfg).unwrap()).unwrap();
        let e = BertConfig::from_file(&p).unwrap_err().to_string();
        assert!(e.contains(expected) && e.contains("config.json"), "{key}: {e}");
    }
}
