//! Image backbones against PyTorch (tests/fixtures/vision_golden.json, tools/make_vision_golden.py):
//! ResNet-18 forward, loss, BatchNorm running statistics and gradients in train mode with formula
//! weights; EfficientNet-Lite0's ImageNet logits with the packaged checkpoint (skipped with a
//! printed reason when `finetune fetch --model efficientnet-lite0` has not run).
use finetune::model::hub;
use finetune::model::vision::{self, resnet::Depth, Arch, ImageClassifier, NetOptions};
use serde_json::Value;
use tch::{nn::VarStore, Device, Kind, Tensor};

fn golden() -> Value {
    serde_json::from_str(include_str!("fixtures/vision_golden.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            x => out.push(x.as_f64().unwrap()),
        }
    }
    let mut out = vec![];
    walk(v, &mut out);
    out
}

fn max_diff(t: &Tensor, want: &Value) -> f64 {
    let got = Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap();
    let want = floats(want);
    assert_eq!(got.len(), want.len());
    got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

/// The fixture script's deterministic weights (`formula_weights`).
fn formula_weights(vs: &VarStore) {
    for (name, mut t) in vs.variables() {
        let n = t.numel() as i64;
        let s = (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.1 + name.len() as f64).sin();
        let v = if name.ends_with("running_var") {
            s.square() * 0.5 + 1.0
        } else if t.dim() > 1 {
            s / ((n / t.size()[0]) as f64).sqrt()
        } else {
            s * 0.1
        };
        tch::no_grad(|| t.copy_(&v.reshape(t.size()).to_kind(Kind::Float)));
    }
}

fn formula_images(b: i64, size: i64) -> Tensor {
    let bb = Tensor::arange(b, (Kind::Float, Device::Cpu)).view([b, 1, 1, 1]);
    let c = Tensor::arange(3, (Kind::Float, Device::Cpu)).view([1, 3, 1, 1]);
    let h = Tensor::arange(size, (Kind::Float, Device::Cpu)).view([1, 1, size, 1]);
    let w = Tensor::arange(size, (Kind::Float, Device::Cpu)).view([1, 1, 1, size]);
    (h * 0.05 + w * 0.07 + c + bb).sin()
}

/// ResNet-18 with `formula_weights` (in NCHW strides until `lay_out_weights`), in `kind`.
fn formula_resnet18_in(num_classes: i64, channels_last: bool, kind: Kind) -> (VarStore, ImageClassifier) {
    let mut vs = VarStore::new(Device::Cpu);
    let o = NetOptions { bn_momentum: 0.1, dropout: 0.0, drop_connect_rate: 0.0, channels_last };
    let net = ImageClassifier::new(&vs.root(), Arch::ResNet(Depth::R18), num_classes, o);
    // As the fixture: the formula's values rounded to float32, then cast.
    formula_weights(&vs);
    vs.set_kind(kind);
    (vs, net)
}

fn formula_resnet18(num_classes: i64, channels_last: bool) -> (VarStore, ImageClassifier) {
    formula_resnet18_in(num_classes, channels_last, Kind::Float)
}

/// The 4-d tensor's strides are NHWC's (channels vary fastest).
fn is_channels_last(t: &Tensor) -> bool {
    let (size, stride) = (t.size(), t.stride());
    stride[1] == 1 && stride[3] == size[1] && stride[2] == size[1] * size[3]
}

/// One train-mode step against the fixture's record: NCHW in float64 (float32 rounding is
/// magnified past any useful bound by this network's BatchNorm, see tools/make_vision_golden.py),
/// channels-last in float32 (its own record: its NHWC kernels sum in another order, which also
/// depends on the thread count, the fixture's: 1).
fn resnet18_train_step(channels_last: bool, tolerance: &Spread) {
    let g = &golden()[if channels_last { "resnet18_channels_last" } else { "resnet18" }];
    let kind = if g["dtype"] == "float64" { Kind::Double } else { Kind::Float };
    tch::set_num_threads(1);
    let (vs, net) = formula_resnet18_in(10, channels_last, kind);
    net.lay_out_weights(&vs);
    assert_eq!(is_channels_last(&vs.variables()["layer1.0.conv1.weight"]), channels_last);
    let x = formula_images(2, g["image_size"].as_i64().unwrap()).to_kind(kind);
    let labels = Tensor::from_slice(&[3i64, 7]);
    let logits = net.forward_t(&x, true);
    // In the logits' own precision (`cross_entropy_for_logits` computes in float32).
    let loss = logits.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0);
    loss.backward();
    let vars = vs.variables();
    let mut d = Spread {
        logits: max_diff(&logits, &g["logits"]),
        loss: (loss.double_value(&[]) - g["loss"].as_f64().unwrap()).abs(),
        // Train-mode BatchNorm updated its running statistics with momentum 0.1.
        running_stats: max_diff(&vars["bn1.running_mean"], &g["bn1_running_mean"]).max(max_diff(&vars["bn1.running_var"], &g["bn1_running_var"])),
        grad_norm: 0.0,
        grad_values: 0.0,
    };
    for (name, want) in g["grads"].as_object().unwrap() {
        let grad = vars[name].grad();
        let want_norm = want["norm"].as_f64().unwrap();
        d.grad_norm = d.grad_norm.max((grad.norm().double_value(&[]) - want_norm).abs() / want_norm.max(1.0));
        d.grad_values = d.grad_values.max(max_diff(&grad.flatten(0, -1).narrow(0, 0, 8), &want["first"]));
        if grad.dim() == 4 {
            // Autograd gives a gradient its parameter's layout, which the optimizer's moments copy.
            assert_eq!(is_channels_last(&grad), channels_last, "{name}: gradient layout");
        }
    }
    eprintln!("resnet18 train step (channels_last {channels_last}) against PyTorch: {d:?}");
    d.assert_within(tolerance);
}

/// How far one train step lands from the fixture: largest absolute differences (`grad_norm`
/// relative to max(norm, 1)).
#[derive(Debug)]
struct Spread {
    logits: f64,
    loss: f64,
    running_stats: f64,
    grad_norm: f64,
    grad_values: f64,
}

impl Spread {
    fn assert_within(&self, t: &Spread) {
        let pairs = [("logits", self.logits, t.logits), ("loss", self.loss, t.loss), ("running_stats", self.running_stats, t.running_stats), ("grad_norm", self.grad_norm, t.grad_norm), ("grad_values", self.grad_values, t.grad_values)];
        for (what, got, bound) in pairs {
            assert!(got <= bound, "{what} differs from PyTorch by {got} (bound {bound})");
        }
    }
}

/// The bounds (docs/development.md, "Tests that depend on the CPU"). Float64: PyTorch's own AVX2,
/// AVX-512 and SSE4.1 kernels agree within 3e-9 on these numbers (grad norms near 289), finetune
/// within 1e-9 of them; float32 channels-last: AVX2 and AVX-512 within 2e-6 of the fixture.
const F64_TOLERANCE: Spread = Spread { logits: 1e-8, loss: 1e-8, running_stats: 1e-8, grad_norm: 1e-8, grad_values: 1e-8 };
const F32_TOLERANCE: Spread = Spread { logits: 1e-4, loss: 1e-5, running_stats: 1e-5, grad_norm: 1e-4, grad_values: 1e-4 };

#[test]
fn resnet18_train_step_matches_torchvision() {
    resnet18_train_step(false, &F64_TOLERANCE);
}

#[test]
fn resnet18_channels_last_train_step_matches_torchvision() {
    resnet18_train_step(true, &F32_TOLERANCE);
}

#[test]
fn efficientnet_lite0_checkpoint_matches_pytorch() {
    let Some(dir) = hub::resolve_cached("efficientnet-lite0") else {
        eprintln!("skipped: EfficientNet-Lite0 weights not cached (run `finetune fetch --model efficientnet-lite0`)");
        return;
    };
    let g = &golden()["efficientnet_lite0"];
    for channels_last in [false, true] {
        let o = NetOptions { bn_momentum: 0.1, dropout: 0.2, drop_connect_rate: 0.2, channels_last };
        let m = vision::load(&dir, None, o, Device::Cpu).unwrap();
        assert!(m.newly_initialised.is_empty());
        assert_eq!(m.config.normalize().mean, [0.5; 3]);
        assert_eq!(is_channels_last(&m.vs.variables()["_conv_stem.weight"]), channels_last);
        let logits = tch::no_grad(|| m.net.forward_t(&formula_images(1, 224), false));
        let d = max_diff(&logits, &g["logits"]);
        assert!(d < 1e-4, "EfficientNet-Lite0 logits (channels_last {channels_last}) differ from PyTorch by {d}");
    }
}

/// transformers' name for a torchvision ResNet tensor (the inverse of `torchvision_name`).
fn hf_name(tv: &str) -> String {
    let conv_or_norm = |kind: &str, rest: &str| if kind == "conv" { format!("convolution.{rest}") } else { format!("normalization.{rest}") };
    let p: Vec<&str> = tv.split('.').collect();
    match p.as_slice() {
        ["conv1", rest] => format!("resnet.embedder.embedder.{}", conv_or_norm("conv", rest)),
        ["bn1", rest] => format!("resnet.embedder.embedder.{}", conv_or_norm("bn", rest)),
        ["fc", rest] => format!("classifier.1.{rest}"),
        [layer, block, "downsample", idx, rest] => {
            let s = layer.trim_start_matches("layer").parse::<usize>().unwrap() - 1;
            format!("resnet.encoder.stages.{s}.layers.{block}.shortcut.{}", conv_or_norm(if *idx == "0" { "conv" } else { "bn" }, rest))
        }
        [layer, block, cb, rest] => {
            let s = layer.trim_start_matches("layer").parse::<usize>().unwrap() - 1;
            let (kind, j) = cb.split_at(if cb.starts_with("conv") { 4 } else { 2 });
            let j = j.parse::<usize>().unwrap() - 1;
            format!("resnet.encoder.stages.{s}.layers.{block}.layer.{j}.{}", conv_or_norm(kind, rest))
        }
        _ => panic!("unexpected name {tv}"),
    }
}

#[test]
fn transformers_resnet_checkpoints_load_under_torchvision_names() {
    let (vs, net) = formula_resnet18(3, false);
    let dir = tempfile::tempdir().unwrap();
    let named: Vec<(String, Tensor)> = vs.variables().into_iter().map(|(n, t)| (hf_name(&n), t)).collect();
    for (hf, _) in &named {
        assert!(!vs.variables().contains_key(hf.as_str()), "{hf} should be a transformers name");
    }
    finetune::model::checkpoint::write_safetensors(&named, &dir.path().join("model.safetensors")).unwrap();
    let cfg = r#"{"model_type": "resnet", "depths": [2, 2, 2, 2], "layer_type": "basic", "id2label": {"0": "a", "1": "b", "2": "c"}}"#;
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let o = NetOptions { bn_momentum: 0.1, dropout: 0.0, drop_connect_rate: 0.0, channels_last: false };
    let m = vision::load(dir.path(), None, o, Device::Cpu).unwrap();
    assert_eq!(m.config.architecture, "resnet18");
    let x = formula_images(1, 32);
    let want = tch::no_grad(|| net.forward_t(&x, false));
    let got = tch::no_grad(|| m.net.forward_t(&x, false));
    assert!(want.equal(&got), "a transformers-named checkpoint loaded different weights");
}

#[test]
fn channels_last_weights_save_as_the_same_file() {
    let (vs, net) = formula_resnet18(3, true);
    let dir = tempfile::tempdir().unwrap();
    let (nchw, nhwc) = (dir.path().join("nchw.safetensors"), dir.path().join("nhwc.safetensors"));
    finetune::model::checkpoint::save_safetensors(&vs, &nchw).unwrap();
    net.lay_out_weights(&vs);
    assert!(is_channels_last(&vs.variables()["conv1.weight"]));
    finetune::model::checkpoint::save_safetensors(&vs, &nhwc).unwrap();
    assert!(std::fs::read(&nchw).unwrap() == std::fs::read(&nhwc).unwrap(), "a channels-last model must save row-major tensors");
}
