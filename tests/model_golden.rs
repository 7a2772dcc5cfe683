//! The encoder, pooler and classification head against transformers on the same checkpoint
//! (fixture from tools/make_golden.py), plus tokenisation identical to the HF fast tokenizer.
mod common;
use finetune::data::tokenize::{load_tokenizer, TextEncoder};
use finetune::model::{checkpoint, config::BertConfig};
use tch::{Device, Kind, Tensor};

fn tensor2(v: &serde_json::Value) -> Tensor {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    Tensor::from_slice2(&rows)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn forward_matches_transformers() {
    let Some(dir) = common::model_dir() else { return };
    let g = common::fixture("bert_golden.json");
    let enc = TextEncoder::new(load_tokenizer(&dir).unwrap(), g["max_seq_length"].as_u64().unwrap() as usize).unwrap();
    let texts: Vec<(String, Option<String>)> = serde_json::from_value(g["texts"].clone()).unwrap();
    let feats = enc.encode(texts.iter().map(|(a, b)| (a.as_str(), b.as_deref()))).unwrap();
    let ids: Vec<Vec<i64>> = serde_json::from_value(g["input_ids"].clone()).unwrap();
    let types: Vec<Vec<i64>> = serde_json::from_value(g["token_type_ids"].clone()).unwrap();
    for (i, f) in feats.iter().enumerate() {
        assert_eq!(f.input_ids, ids[i], "input_ids of pair {i}");
        assert_eq!(f.token_type_ids, types[i], "token_type_ids of pair {i}");
    }

    let cfg = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let (vs, net, report) = checkpoint::load_sequence_classifier(&dir, &cfg, 3, Device::Cpu).unwrap();
    assert_eq!(report.newly_initialised, vec!["classifier.bias", "classifier.weight"]);
    let mut vars = vs.variables();
    let b: Vec<f32> = serde_json::from_value(g["classifier_bias"].clone()).unwrap();
    tch::no_grad(|| {
        vars.get_mut("classifier.weight").unwrap().copy_(&tensor2(&g["classifier_weight"]));
        vars.get_mut("classifier.bias").unwrap().copy_(&Tensor::from_slice(&b));
    });

    let idx: Vec<usize> = (0..feats.len()).collect();
    let batch = finetune::data::batch::collate(&feats, &idx, enc.pad_id, 1, Device::Cpu);
    let (hidden, pooled) = tch::no_grad(|| {
        let hidden = net.encoder.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, false, false, None);
        let pooled = net.encoder.pool(&hidden).expect("BERT has a pooler");
        (hidden, pooled)
    });
    let logits = tch::no_grad(|| net.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, false));
    for (i, f) in feats.iter().enumerate() {
        let ours = hidden.get(i as i64).narrow(0, 0, f.input_ids.len() as i64);
        let d = max_abs_diff(&ours, &tensor2(&g["last_hidden_state"][i]).to_kind(Kind::Float));
        assert!(d <= 1e-4, "last_hidden_state of pair {i}: max abs diff {d}");
    }
    let d = max_abs_diff(&pooled, &tensor2(&g["pooled"]));
    assert!(d <= 1e-4, "pooled: max abs diff {d}");
    let d = max_abs_diff(&logits, &tensor2(&g["logits"]));
    assert!(d <= 1e-4, "logits: max abs diff {d}");
    // Dropout must act in training mode: the same input then gives different logits.
    let train = net.forward(&batch.input_ids, &batch.token_type_ids, &batch.attention_mask, true);
    assert!(max_abs_diff(&train, &logits) > 1e-3, "dropout had no effect in training mode");
}

#[test]
fn vocab_txt_fallback_tokenises_like_tokenizer_json() {
    let Some(dir) = common::model_dir() else { return };
    let g = common::fixture("bert_golden.json");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["vocab.txt", "tokenizer_config.json"] {
        std::fs::copy(dir.join(f), tmp.path().join(f)).unwrap();
    }
    let enc = TextEncoder::new(load_tokenizer(tmp.path()).unwrap(), 16).unwrap();
    let texts: Vec<(String, Option<String>)> = serde_json::from_value(g["texts"].clone()).unwrap();
    let feats = enc.encode(texts.iter().map(|(a, b)| (a.as_str(), b.as_deref()))).unwrap();
    let ids: Vec<Vec<i64>> = serde_json::from_value(g["input_ids"].clone()).unwrap();
    assert_eq!(feats.iter().map(|f| f.input_ids.clone()).collect::<Vec<_>>(), ids);
    // do_lower_case false keeps case, so "WORLD" no longer maps to the lowercase piece.
    std::fs::write(tmp.path().join("tokenizer_config.json"), br#"{"do_lower_case": false}"#).unwrap();
    let cased = TextEncoder::new(load_tokenizer(tmp.path()).unwrap(), 16).unwrap();
    assert_ne!(cased.encode([("Hello WORLD", None)]).unwrap()[0].input_ids, enc.encode([("Hello WORLD", None)]).unwrap()[0].input_ids);
}
