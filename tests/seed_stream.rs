//! A seed gives transformers' new-head weights: building the model draws values for every layer,
//! yet the weights a checkpoint lacks must be the first draws after the caller's seed, in module
//! order (pooler before the head), as transformers' meta-device loading draws them. And a saved
//! generator state puts the stream back where it was, which is what a resumed run relies on. The
//! default generators are process-wide, so the tests here take turns.
use finetune::model::{checkpoint, config::BertConfig, heads::SequenceClassifier};
use finetune::torch_ext;
use std::sync::Mutex;
use tch::{nn::VarStore, Device, Kind, Tensor};

static GENERATORS: Mutex<()> = Mutex::new(());

#[test]
fn new_weights_are_the_first_draws_after_the_seed() {
    let _turn = GENERATORS.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let cfg: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 16, "max_position_embeddings": 32, "model_type": "bert", "initializer_range": 0.05
    }))
    .unwrap();
    let src = VarStore::new(Device::Cpu);
    let _ = SequenceClassifier::new(&src.root(), &cfg, 3);
    // An encoder-only checkpoint: pooler and classifier are both new.
    let encoder: Vec<(String, Tensor)> =
        src.variables().into_iter().filter(|(n, _)| n.starts_with("bert.") && !n.starts_with("bert.pooler.")).collect();
    Tensor::write_safetensors(&encoder, d.path().join("model.safetensors")).unwrap();
    std::fs::write(d.path().join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();

    tch::manual_seed(1234);
    let pooler = Tensor::empty([8, 8], (Kind::Float, Device::Cpu)).normal_(0.0, 0.05);
    let head = Tensor::empty([3, 8], (Kind::Float, Device::Cpu)).normal_(0.0, 0.05);
    let next = Tensor::empty([4], (Kind::Float, Device::Cpu)).normal_(0.0, 1.0);

    tch::manual_seed(1234);
    let (vs, _, report) = checkpoint::load_sequence_classifier(d.path(), &cfg, 3, Device::Cpu).unwrap();
    assert_eq!(report.newly_initialised.len(), 4, "{report:?}");
    let v = vs.variables();
    assert!(v["bert.pooler.dense.weight"].equal(&pooler), "pooler is not the first draw");
    assert!(v["classifier.weight"].equal(&head), "head is not the second draw");
    assert_eq!(v["classifier.bias"].abs().sum(Kind::Float).double_value(&[]), 0.0);
    // The generator continues from there, as it does in transformers.
    assert!(Tensor::empty([4], (Kind::Float, Device::Cpu)).normal_(0.0, 1.0).equal(&next));
}

#[test]
fn a_restored_generator_state_repeats_the_stream() {
    let _turn = GENERATORS.lock().unwrap_or_else(|e| e.into_inner());
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    } else {
        eprintln!("CUDA generator not checked: no CUDA device visible");
    }
    for d in devices {
        tch::manual_seed(99);
        let _ = Tensor::empty([7], (Kind::Float, d)).normal_(0.0, 1.0);
        let state = torch_ext::rng_state(d).unwrap();
        let a = Tensor::empty([1000], (Kind::Float, d)).bernoulli_float_(0.9);
        let b = Tensor::empty([1000], (Kind::Float, d)).bernoulli_float_(0.9);
        assert!(!a.equal(&b), "{d:?}: two draws were equal");
        torch_ext::set_rng_state(d, &state).unwrap();
        assert!(Tensor::empty([1000], (Kind::Float, d)).bernoulli_float_(0.9).equal(&a), "{d:?}: the stream did not repeat");
        assert!(torch_ext::set_rng_state(d, &Tensor::zeros([3], (Kind::Uint8, Device::Cpu))).is_err(), "{d:?}: a bad state was accepted");
    }
}
