//! A property test over random `config.json` files: loading one either fails with an error that
//! names the file, or gives a config whose model builds and runs a forward pass — never a panic.
//! Image configs whose evaluation crop cannot fit are refused too.
use finetune::model::config::BertConfig;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// A plausible value for `key`.
fn valid(rng: &mut rand_chacha::ChaCha8Rng, key: &str) -> Value {
    match key {
        "hidden_dropout_prob" | "attention_probs_dropout_prob" | "classifier_dropout" => json!(rng.gen_range(0.0..0.5)),
        "layer_norm_eps" => json!(1e-12),
        "initializer_range" => json!(0.02),
        "hidden_act" => json!(["gelu", "relu", "gelu_new"][rng.gen_range(0..3)]),
        "position_embedding_type" => json!("absolute"),
        "model_type" => json!("bert"),
        "hidden_size" => json!(12),
        "num_attention_heads" => json!([1, 2, 3, 4][rng.gen_range(0..4)]),
        "pad_token_id" => json!(0),
        _ => json!(rng.gen_range(1..24)),
    }
}

/// A hostile value: zero or negative sizes, out-of-range probabilities, wrong types, unknown names.
fn hostile(rng: &mut rand_chacha::ChaCha8Rng) -> Value {
    match rng.gen_range(0..7) {
        0 => json!(rng.gen_range(-3..=0)),
        1 => json!(rng.gen_range(-1.0..2.0)),
        2 => json!("swish"),
        3 => json!(null),
        4 => json!(rng.gen_range(1..200)),
        5 => json!([1, 2]),
        _ => json!(1e308),
    }
}

#[test]
fn random_configs_error_or_run_never_panic() {
    let keys = [
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob",
        "attention_probs_dropout_prob", "classifier_dropout", "max_position_embeddings", "type_vocab_size", "initializer_range",
        "layer_norm_eps", "pad_token_id", "position_embedding_type", "model_type",
    ];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.json");
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..400 {
        let mut cfg: serde_json::Map<String, Value> = keys.iter().map(|k| (k.to_string(), valid(&mut rng, k))).collect();
        // Spoil up to two keys and leave out up to one (defaults apply where a key has one).
        for _ in 0..rng.gen_range(0..3) {
            let k = keys[rng.gen_range(0..keys.len())];
            cfg.insert(k.into(), hostile(&mut rng));
        }
        if rng.gen_bool(0.3) {
            cfg.remove(keys[rng.gen_range(0..keys.len())]);
        }
        std::fs::write(&path, Value::Object(cfg.clone()).to_string()).unwrap();
        match BertConfig::from_file(&path) {
            Err(e) => {
                assert!(e.to_string().contains("config.json"), "the error names the file: {e}");
                refused += 1;
            }
            Ok(c) => {
                loaded += 1;
                let vs = tch::nn::VarStore::new(tch::Device::Cpu);
                let net = finetune::model::heads::SequenceClassifier::new(&vs.root(), &c, 3);
                let len = c.max_position_embeddings.min(5);
                let ids = tch::Tensor::zeros([2, len], (tch::Kind::Int64, tch::Device::Cpu));
                let logits = net.forward(&ids, &ids, &ids.ones_like(), false);
                assert_eq!(logits.size(), [2, 3], "{cfg:?}");
                assert!(c.check_seq_length(c.max_position_embeddings as usize + 1, &path).is_err());
            }
        }
    }
    assert!(loaded > 20 && refused > 100, "the generator covers both outcomes: {loaded} loaded, {refused} refused");
}

#[test]
fn image_configs_with_a_crop_larger_than_the_resize_are_refused() {
    use finetune::model::vision::VisionConfig;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.json");
    for (size, resize, ok) in [(224, 256, true), (224, 224, true), (300, 256, false), (0, 256, false)] {
        std::fs::write(&path, json!({ "architecture": "resnet18", "image_size": size, "resize": resize }).to_string()).unwrap();
        match VisionConfig::from_file(&path) {
            Ok(_) => assert!(ok, "{size}/{resize} loaded"),
            Err(e) => assert!(!ok && e.to_string().contains("image_size") && e.to_string().contains("config.json"), "{size}/{resize}: {e}"),
        }
    }
}
