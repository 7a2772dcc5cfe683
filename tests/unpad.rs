//! The unpadded encoder (`--unpad`) against the padded one, on mixed-length batches: logits, loss
//! and every parameter's gradient equal within 1e-5 (fp32, CPU) for each BERT-shaped family
//! (BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT) under the sequence- and token-classification heads,
//! with dropout on and the same seed — the unpadded forward draws the padded forward's masks.
//! One test, since the layout switch and the generator are process-wide.
use finetune::model::unpad::set_unpad;
use finetune::model::checkpoint::{self, LoadReport};
use finetune::model::config::BertConfig;
use finetune::model::heads::{SequenceClassifier, TokenClassifier};
use std::path::{Path, PathBuf};
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Attention groups {12, 11, 10}, {5}, {3}: padding inside a group, and groups of one.
const LENGTHS: [i64; 5] = [12, 5, 11, 3, 10];
const BATCH: i64 = LENGTHS.len() as i64;

fn fixture(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families").join(family)
}

/// A batch of `LENGTHS` random ids (type 1 on the second half of the longest, as a pair has),
/// padded with `pad` to the longest.
fn batch(cfg: &BertConfig) -> (Tensor, Tensor, Tensor) {
    let seq = LENGTHS[0];
    let mask = Tensor::from_slice(&LENGTHS.iter().flat_map(|&n| (0..seq).map(move |i| (i < n) as i64)).collect::<Vec<_>>()).view([BATCH, seq]);
    tch::manual_seed(3);
    let ids = Tensor::randint_low(cfg.pad_token_id + 1, cfg.vocab_size, [BATCH, seq], (Kind::Int64, Device::Cpu));
    let ids = ids.where_scalarother(&mask.ne(0), cfg.pad_token_id);
    let types = Tensor::zeros([BATCH, seq], (Kind::Int64, Device::Cpu));
    let types = if cfg.type_vocab_size > 1 { types.index_fill(1, &Tensor::arange_start(6, seq, (Kind::Int64, Device::Cpu)), 1) * &mask } else { types };
    (ids, types, mask)
}

/// Logits and every gradient of one training-mode forward and backward (dropout on, seed 11).
fn run(vs: &VarStore, forward: &dyn Fn() -> (Tensor, Tensor), unpad: bool) -> (Tensor, Vec<(String, Tensor)>) {
    set_unpad(unpad);
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, v) in &vars {
        v.grad().defined().then(|| v.grad().zero_());
    }
    tch::manual_seed(11);
    let (logits, loss) = forward();
    loss.backward();
    let grads = vars.iter().map(|(n, v)| (n.clone(), if v.grad().defined() { v.grad().copy() } else { v.zeros_like() })).collect();
    (logits.detach(), grads)
}

fn assert_same(what: &str, padded: (Tensor, Vec<(String, Tensor)>), unpadded: (Tensor, Vec<(String, Tensor)>)) {
    let d = (&padded.0 - &unpadded.0).abs().max().double_value(&[]);
    assert!(d <= 1e-5, "{what}: logits differ by {d}");
    let (mut nonzero, mut worst) = (0, 0.0f64);
    for ((name, a), (_, b)) in padded.1.iter().zip(&unpadded.1) {
        let d = (a - b).abs().max().double_value(&[]);
        assert!(d <= 1e-5, "{what}: gradient of {name} differs by {d}");
        nonzero += (a.abs().max().double_value(&[]) > 0.0) as usize;
        worst = worst.max(d);
    }
    eprintln!("{what}: largest difference {d:.1e} in the logits, {worst:.1e} in a gradient");
    assert!(nonzero > padded.1.len() / 2, "{what}: only {nonzero} of {} gradients are nonzero", padded.1.len());
}

/// `bernoulli_prefix` draws the entries it keeps exactly as `bernoulli_` of the whole tensor does,
/// and leaves the generator where that draw leaves it: a small case, and rows long enough that
/// the generator's 624-word state refills inside kept runs, inside skipped runs and on their
/// boundaries.
fn prefix_draws_equal_the_whole() {
    let long: Vec<i64> = (0..40).map(|r| [0, 1000, 313, 312, 999, 624, 7][r % 7]).collect();
    for (rows, width, lens) in [(5, 9, vec![7i64, 0, 3, 9, 1]), (40, 1000, long)] {
        tch::manual_seed(9);
        let whole = Tensor::empty([rows, width], (Kind::Float, Device::Cpu)).bernoulli_float_(0.9);
        let after = Tensor::rand([4], (Kind::Float, Device::Cpu));
        tch::manual_seed(9);
        let part = finetune::torch_ext::bernoulli_prefix(rows, width, &lens, 0.9).unwrap();
        assert!(after.equal(&Tensor::rand([4], (Kind::Float, Device::Cpu))), "[{rows}, {width}]: the generator ends elsewhere");
        let kept = Tensor::arange(width, (Kind::Int64, Device::Cpu)).unsqueeze(0).lt_tensor(&Tensor::from_slice(&lens).unsqueeze(1));
        assert!(part.equal(&whole.where_scalarother(&kept, 0.0)), "[{rows}, {width}]: {part} vs {whole}");
        assert!(whole.sum(Kind::Float).double_value(&[]) < (rows * width) as f64, "a draw with nothing dropped tests nothing");
    }
}

/// A fixture's weights with a fresh head (`load`), or a model drawn whole (`new`); seed 5.
fn model<T>(dir: &Option<PathBuf>, load: impl Fn(&Path) -> (VarStore, T, LoadReport), new: impl Fn(&tch::nn::Path) -> T) -> (VarStore, T) {
    tch::manual_seed(5);
    match dir {
        Some(d) => {
            let (vs, net, _) = load(d);
            (vs, net)
        }
        None => {
            let vs = VarStore::new(Device::Cpu);
            let net = new(&vs.root());
            (vs, net)
        }
    }
}

#[test]
fn unpadded_encoder_equals_padded() {
    // Both parts draw from the global generator: one test, in sequence.
    prefix_draws_equal_the_whole();
    let bert: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": 99, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37, "model_type": "bert",
    }))
    .unwrap();
    let mut families: Vec<(String, BertConfig, Option<PathBuf>)> = vec![("bert".into(), bert, None)];
    for f in ["roberta", "xlm-roberta", "electra", "distilbert"] {
        families.push((f.into(), BertConfig::from_file(&fixture(f).join("config.json")).unwrap(), Some(fixture(f))));
    }
    for (family, cfg, dir) in &families {
        let (ids, types, mask) = batch(cfg);
        let (vs, net) = model(dir, |d| checkpoint::load_sequence_classifier(d, cfg, 3, Device::Cpu).unwrap(), |root| SequenceClassifier::new(root, cfg, 3));
        let labels = Tensor::from_slice(&[0i64, 2, 1, 2, 0]);
        let forward = || {
            let logits = net.forward(&ids, &types, &mask, true);
            let loss = logits.cross_entropy_for_logits(&labels);
            (logits, loss)
        };
        assert_same(&format!("{family} sequence classification"), run(&vs, &forward, false), run(&vs, &forward, true));

        let (vs, net) = model(dir, |d| checkpoint::load_token_classifier(d, cfg, 5, Device::Cpu).unwrap(), |root| TokenClassifier::new(root, cfg, 5));
        let tags = Tensor::randint(5, [BATCH, LENGTHS[0]], (Kind::Int64, Device::Cpu)).where_scalarother(&mask.ne(0), -100);
        let real = mask.ne(0).unsqueeze(-1);
        let forward = || {
            let logits = net.forward(&ids, &types, &mask, true);
            let loss = logits.view([-1, 5]).cross_entropy_loss::<Tensor>(&tags.view([-1]), None, tch::Reduction::Mean, -100, 0.0);
            (logits, loss)
        };
        let (padded, unpadded) = (run(&vs, &forward, false), run(&vs, &forward, true));
        // The padding's states were not computed (zeros under the head), so its logits differ.
        let at_padding = (&padded.0 - &unpadded.0).abs().where_scalarother(&real.logical_not(), 0.0).max().double_value(&[]);
        assert!(at_padding > 1e-3, "{family}: the unpadded path did not run");
        let real_only = |(l, g): (Tensor, Vec<(String, Tensor)>)| (l.where_scalarother(&real, 0.0), g);
        assert_same(&format!("{family} token classification"), real_only(padded), real_only(unpadded));
    }
    set_unpad(false);
}
