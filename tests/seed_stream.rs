//! A seed gives transformers' new-head weights: building the model draws values for every layer,
//! yet the weights a checkpoint lacks must be the first draws after the caller's seed, in module
//! order (pooler before the head; no pooler at all under token and span heads), as transformers'
//! meta-device loading draws them. And a saved
//! generator state puts the stream back where it was, which is what a resumed run relies on.
//! `--dropout-rng cpu` draws ATen's CPU dropout masks on any device. The default generators (and
//! the dropout switch) are process-wide, so the tests here take turns.
use finetune::model::dropout::{set_dropout_rng, DropoutRng};
use finetune::model::{checkpoint, config::BertConfig, heads::SequenceClassifier};
use std::collections::BTreeSet;
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

    // BertForTokenClassification has no pooler: its classifier is the first draw, and a saved
    // model holds transformers' keys. The span head likewise leaves a checkpoint's pooler unused.
    tch::manual_seed(1234);
    let first = Tensor::empty([3, 8], (Kind::Float, Device::Cpu)).normal_(0.0, 0.05);
    tch::manual_seed(1234);
    let (vs, _, report) = checkpoint::load_token_classifier(d.path(), &cfg, 3, Device::Cpu).unwrap();
    let new: BTreeSet<&str> = report.newly_initialised.iter().map(String::as_str).collect();
    assert_eq!(new, BTreeSet::from(["classifier.bias", "classifier.weight"]), "{report:?}");
    assert!(vs.variables()["classifier.weight"].equal(&first), "the token head is not the first draw");
    assert!(vs.variables().keys().all(|n| !n.contains("pooler")), "a token classifier built a pooler");
    let full: Vec<(String, Tensor)> = src.variables().into_iter().filter(|(n, _)| !n.starts_with("classifier.")).collect();
    Tensor::write_safetensors(&full, d.path().join("model.safetensors")).unwrap();
    let (_, _, report) = checkpoint::load_question_answering(d.path(), &cfg, Device::Cpu).unwrap();
    let unused: BTreeSet<&str> = report.unused.iter().map(String::as_str).collect();
    assert_eq!(unused, BTreeSet::from(["bert.pooler.dense.bias", "bert.pooler.dense.weight"]), "{report:?}");
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

/// A tiny BERT classifier (dropout 0.3 everywhere) on `device`, its weights from seed 5.
fn tiny_classifier(device: Device) -> (VarStore, SequenceClassifier) {
    let cfg: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 32, "model_type": "bert", "hidden_dropout_prob": 0.3, "attention_probs_dropout_prob": 0.3
    }))
    .unwrap();
    tch::manual_seed(5);
    let mut vs = VarStore::new(Device::Cpu);
    let net = SequenceClassifier::new(&vs.root(), &cfg, 2);
    vs.set_device(device);
    (vs, net)
}

/// Training-mode logits under `seed` and the given mask source, on `device`.
fn train_logits(net: &SequenceClassifier, rng: DropoutRng, seed: i64, device: Device) -> Tensor {
    let ids = Tensor::arange(24, (Kind::Int64, Device::Cpu)).remainder(47).view([3, 8]) + 2;
    let mask = Tensor::ones([3, 8], (Kind::Int64, Device::Cpu));
    let _ = mask.get(2).narrow(0, 5, 3).fill_(0);
    set_dropout_rng(rng);
    tch::manual_seed(seed);
    let out = net.forward(&ids.to_device(device), &ids.zeros_like().to_device(device), &mask.to_device(device), true);
    set_dropout_rng(DropoutRng::Device);
    out.to_device(Device::Cpu)
}

#[test]
fn cpu_dropout_masks_are_atens_on_the_cpu_and_repeat_on_cuda() {
    let _turn = GENERATORS.lock().unwrap_or_else(|e| e.into_inner());
    let (_vs, net) = tiny_classifier(Device::Cpu);
    let aten = train_logits(&net, DropoutRng::Device, 11, Device::Cpu);
    // Bit for bit: the written-out attention and dropout draw what SDPA and ATen's dropout draw.
    assert!(train_logits(&net, DropoutRng::Cpu, 11, Device::Cpu).equal(&aten), "CPU masks differ from ATen's CPU dropout");
    assert!(!train_logits(&net, DropoutRng::Cpu, 12, Device::Cpu).equal(&aten), "dropout did not depend on the seed");
    if !tch::Cuda::is_available() {
        eprintln!("CPU-drawn masks on CUDA not checked: no CUDA device visible");
        return;
    }
    let (_vs, net) = tiny_classifier(Device::Cuda(0));
    let d = (train_logits(&net, DropoutRng::Cpu, 11, Device::Cuda(0)) - &aten).abs().max().double_value(&[]);
    assert!(d < 1e-4, "CUDA with CPU masks differs from the CPU run by {d}");
    let d = (train_logits(&net, DropoutRng::Device, 11, Device::Cuda(0)) - &aten).abs().max().double_value(&[]);
    assert!(d > 1e-3, "CUDA's own masks unexpectedly equal the CPU's ({d})");
}
