//! ResNet-18/34/50/101/152 (He et al. 2016) exactly as torchvision builds them: BasicBlock or
//! Bottleneck stages, stride on the 3×3 convolution (ResNet v1.5), BatchNorm with train/eval
//! semantics, and the names `conv1`, `bn1`, `layer{1..4}.{i}.{conv,bn}{1..3}`, `downsample.{0,1}`,
//! `fc`.
use tch::nn::{self, ModuleT};
use tch::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    R18,
    R34,
    R50,
    R101,
    R152,
}

impl std::str::FromStr for Depth {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "resnet18" => Ok(Depth::R18),
            "resnet34" => Ok(Depth::R34),
            "resnet50" => Ok(Depth::R50),
            "resnet101" => Ok(Depth::R101),
            "resnet152" => Ok(Depth::R152),
            _ => Err(crate::Error::Invalid(format!("backbone `{s}`; expected resnet18, resnet34, resnet50, resnet101 or resnet152"))),
        }
    }
}

impl Depth {
    /// Blocks per stage, and whether they are bottlenecks.
    fn layout(self) -> ([i64; 4], bool) {
        match self {
            Depth::R18 => ([2, 2, 2, 2], false),
            Depth::R34 => ([3, 4, 6, 3], false),
            Depth::R50 => ([3, 4, 6, 3], true),
            Depth::R101 => ([3, 4, 23, 3], true),
            Depth::R152 => ([3, 8, 36, 3], true),
        }
    }

    /// Width of the pooled features (the classifier's input).
    pub fn num_features(self) -> i64 {
        if self.layout().1 {
            2048
        } else {
            512
        }
    }
}

/// torchvision initialises convolutions with kaiming_normal_(mode="fan_out", nonlinearity="relu").
fn conv(p: nn::Path, cin: i64, cout: i64, k: i64, stride: i64) -> nn::Conv2D {
    let fan_out = (cout * k * k) as f64;
    let c = nn::ConvConfig {
        stride,
        padding: k / 2,
        bias: false,
        ws_init: nn::Init::Randn { mean: 0.0, stdev: (2.0 / fan_out).sqrt() },
        ..Default::default()
    };
    nn::conv2d(p, cin, cout, k, c)
}

fn bn(p: nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(p, c, Default::default())
}

#[derive(Debug)]
struct Block {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl Block {
    fn new(p: &nn::Path, cin: i64, width: i64, stride: i64, bottleneck: bool) -> (Self, i64) {
        let (shapes, cout): (Vec<(i64, i64, i64, i64)>, i64) = if bottleneck {
            (vec![(cin, width, 1, 1), (width, width, 3, stride), (width, width * 4, 1, 1)], width * 4)
        } else {
            (vec![(cin, width, 3, stride), (width, width, 3, 1)], width)
        };
        let convs = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (a, b, k, s))| (conv(p / format!("conv{}", i + 1), a, b, k, s), bn(p / format!("bn{}", i + 1), b)))
            .collect();
        let downsample = (stride != 1 || cin != cout).then(|| {
            let d = p / "downsample";
            (conv(&d / "0", cin, cout, 1, stride), bn(&d / "1", cout))
        });
        (Block { convs, downsample }, cout)
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut y = x.shallow_clone();
        for (i, (c, b)) in self.convs.iter().enumerate() {
            y = c.forward_t(&y, train).apply_t(b, train);
            if i != last {
                y = y.relu();
            }
        }
        let shortcut = match &self.downsample {
            Some((c, b)) => x.apply_t(c, train).apply_t(b, train),
            None => x.shallow_clone(),
        };
        (y + shortcut).relu()
    }
}

/// The convolutional trunk; the classifier (`fc`) belongs to the caller.
#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<Block>,
}

impl ResNet {
    pub fn new(root: &nn::Path, depth: Depth) -> Self {
        let (counts, bottleneck) = depth.layout();
        let mut cin = 64;
        let mut blocks = Vec::new();
        for (stage, (&n, width)) in counts.iter().zip([64, 128, 256, 512]).enumerate() {
            let p = root / format!("layer{}", stage + 1);
            for i in 0..n {
                let stride = if stage > 0 && i == 0 { 2 } else { 1 };
                let (b, cout) = Block::new(&(&p / i), cin, width, stride, bottleneck);
                blocks.push(b);
                cin = cout;
            }
        }
        ResNet {
            conv1: conv(root / "conv1", 3, 64, 7, 2),
            bn1: bn(root / "bn1", 64),
            blocks,
        }
    }

    /// Globally pooled features [batch, num_features] of images [batch, 3, H, W].
    pub fn features(&self, images: &Tensor, train: bool) -> Tensor {
        let mut x = images.apply_t(&self.conv1, train).apply_t(&self.bn1, train).relu().max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        x.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}
