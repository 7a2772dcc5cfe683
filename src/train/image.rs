//! The image classification job (`finetune image`, the paper's §2.1): an ImageNet backbone gets a
//! fresh head for the task's classes and is either fine-tuned end to end (random-resized-crop +
//! flip, BatchNorm in train mode) or kept frozen while a linear classifier learns on its cached
//! pooled features (`freeze_backbone`, the paper's "classification head" alternative). Images are
//! decoded in parallel (rayon) and the next batch is decoded while the model works on this one.
use crate::data::images::{self, ImageSet, Normalize, Transform};
use crate::error::{Error, Result};
use crate::model::checkpoint;
use crate::model::hub;
use crate::model::vision::{self, LoadedImageModel, NetOptions, VisionConfig};
use crate::train::args::{ResumeFrom, TrainArgs};
use crate::train::trainer::{self, Evaluation, RunContext, Workload};
use rayon::prelude::*;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use tch::{Device, Kind, Tensor};

/// Where the images and their lists are.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageData {
    /// Image paths in the lists are relative to this folder; without lists it is an ImageFolder
    /// root holding `train/` and `val/` (or `validate/`).
    pub data_dir: PathBuf,
    pub train_list: Option<PathBuf>,
    pub val_list: Option<PathBuf>,
    pub label_list: Option<PathBuf>,
    /// Drop (and count) images that cannot be read or decoded instead of failing.
    pub skip_bad_images: bool,
}

impl ImageData {
    /// A list file: the flag, else `<data_dir>/<name>`, else beside the data dir (PaddleHub keeps
    /// the lists next to the image folder).
    fn list(&self, flag: &Option<PathBuf>, name: &str) -> Option<PathBuf> {
        flag.clone().or_else(|| {
            [Some(self.data_dir.as_path()), self.data_dir.parent()].into_iter().flatten().map(|d| d.join(name)).find(|p| p.is_file())
        })
    }

    /// The train and validation sets (list layout if a train list exists, else ImageFolder).
    pub fn load(&self) -> Result<(ImageSet, ImageSet)> {
        match (self.list(&self.train_list, "train_list.txt"), self.list(&self.val_list, "validate_list.txt")) {
            (Some(train), Some(val)) => {
                let labels = self.labels(&train)?;
                Ok((self.checked(images::read_list(&self.data_dir, &train, labels.clone())?)?, self.checked(images::read_list(&self.data_dir, &val, labels)?)?))
            }
            (Some(_), None) => Err(Error::file(&self.data_dir, "a train list but no validate_list.txt: pass --val-list")),
            _ => {
                let val_dir = ["val", "validate", "validation"].iter().map(|d| self.data_dir.join(d)).find(|p| p.is_dir());
                let val_dir = val_dir.ok_or_else(|| Error::file(&self.data_dir, "no train_list.txt/validate_list.txt and no ImageFolder train/ + val/ sub-folders"))?;
                let (train, val) = (images::read_folder(&self.data_dir.join("train"))?, images::read_folder(&val_dir)?);
                if train.labels != val.labels {
                    return Err(Error::file(&val_dir, format!("classes {:?} differ from train/'s {:?}", val.labels, train.labels)));
                }
                Ok((self.checked(train)?, self.checked(val)?))
            }
        }
    }

    /// One labelled list scored alone (`finetune image eval`).
    pub fn load_list(&self, list: &Path, labels: Option<Vec<String>>) -> Result<ImageSet> {
        let labels = match labels {
            Some(l) => l,
            None => self.labels(list)?,
        };
        self.checked(images::read_list(&self.data_dir, list, labels)?)
    }

    fn labels(&self, beside: &Path) -> Result<Vec<String>> {
        let path = self.label_list.clone().or_else(|| beside.parent().map(|d| d.join("label_list.txt")).filter(|p| p.is_file()));
        images::read_label_list(&path.ok_or_else(|| Error::file(beside, "no label_list.txt beside it: pass --label-list"))?)
    }

    /// Decodes every image once, in parallel: a missing or undecodable file is an error naming it,
    /// or with `skip_bad_images` a counted warning.
    fn checked(&self, mut set: ImageSet) -> Result<ImageSet> {
        let bad: Vec<(usize, Error)> = set
            .items
            .par_iter()
            .enumerate()
            .filter_map(|(i, (p, _))| images::decode(&set.root.join(p)).err().map(|e| (i, e)))
            .collect();
        if let Some((_, first)) = bad.first() {
            if !self.skip_bad_images {
                return Err(Error::Invalid(format!("{first} ({} bad image(s); --skip-bad-images drops them)", bad.len())));
            }
            tracing::warn!("skipping {} unreadable image(s), first: {first}", bad.len());
            let drop: std::collections::HashSet<usize> = bad.iter().map(|(i, _)| *i).collect();
            set.items = set.items.into_iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, x)| x).collect();
        }
        Ok(set)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ImageArgs {
    pub model: String,
    pub data: ImageData,
    pub output_dir: PathBuf,
    pub image_size: u32,
    pub freeze_backbone: bool,
    pub net: NetOptionsArgs,
    pub train: TrainArgs,
    pub per_device_eval_batch_size: usize,
    #[serde(serialize_with = "crate::run_info::serialize_device")]
    pub device: Device,
    pub max_train_samples: Option<usize>,
    pub max_eval_samples: Option<usize>,
    pub resume: Option<ResumeFrom>,
}

/// `NetOptions` as recorded in the run config.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct NetOptionsArgs {
    pub bn_momentum: f64,
    pub dropout: Option<f64>,
    pub drop_connect_rate: f64,
    pub channels_last: bool,
}

impl NetOptionsArgs {
    fn options(&self, arch: vision::Arch) -> NetOptions {
        let default_dropout = match arch {
            vision::Arch::EfficientNetLite0 => 0.2,
            vision::Arch::ResNet(_) => 0.0,
        };
        NetOptions { bn_momentum: self.bn_momentum, dropout: self.dropout.unwrap_or(default_dropout), drop_connect_rate: self.drop_connect_rate, channels_last: self.channels_last }
    }
}

/// Decodes `indices` of `set` and stacks them as a [n, 3, s, s] batch (rayon over images).
fn batch(set: &ImageSet, indices: &[usize], transform: impl Fn(usize) -> Transform + Sync, norm: Normalize) -> Result<Tensor> {
    let size = match transform(indices[0]) {
        Transform::Eval { size, .. } | Transform::Train { size, .. } => size as i64,
    };
    let planes: Vec<Vec<f32>> = indices
        .par_iter()
        .map(|&i| images::decode(&set.root.join(&set.items[i].0)).map(|img| images::to_input(&img, transform(i), norm)))
        .collect::<Result<_>>()?;
    let flat: Vec<f32> = planes.concat();
    Ok(Tensor::from_slice(&flat).view([indices.len() as i64, 3, size, size]))
}

/// The seed of image `i`'s augmentation at optimizer step `step`.
fn aug_seed(seed: u64, step: usize, i: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (step as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (i as u64).wrapping_mul(0x94D0_49BB_1331_11EB)
}

fn labels_tensor(set: &ImageSet, indices: &[usize], device: Device) -> Tensor {
    crate::data::batch::upload(Tensor::from_slice(&indices.iter().map(|&i| set.items[i].1 as i64).collect::<Vec<_>>()), device)
}

/// `f` (no grad) over a whole set in eval-transformed batches, concatenated.
fn map_set(m: &LoadedImageModel, set: &ImageSet, batch_size: usize, f: impl Fn(&Tensor) -> Tensor) -> Result<Tensor> {
    let c = &m.config;
    let t = Transform::Eval { resize: c.resize, size: c.image_size };
    let idx: Vec<usize> = (0..set.items.len()).collect();
    let mut out = Vec::new();
    for chunk in idx.chunks(batch_size.max(1)) {
        let x = crate::data::batch::upload(batch(set, chunk, |_| t, c.normalize())?, m.vs.device());
        out.push(tch::no_grad(|| f(&x)));
    }
    Ok(Tensor::cat(&out, 0))
}

/// Logits [n, classes] of a whole set with the eval transform, on the CPU.
fn predict_set(m: &LoadedImageModel, set: &ImageSet, batch_size: usize) -> Result<Tensor> {
    map_set(m, set, batch_size, |x| m.net.forward_t(x, false).to_device(Device::Cpu).to_kind(Kind::Float))
}

/// Pooled backbone features [n, F] of a whole set with the eval transform (frozen-backbone mode).
fn features_set(m: &LoadedImageModel, set: &ImageSet, batch_size: usize) -> Result<Tensor> {
    map_set(m, set, batch_size, |x| m.net.features(x, false))
}

/// Accuracy, loss, per-class accuracy and the confusion matrix (rows: true class, columns:
/// predicted) of `logits` against the set's labels.
pub fn score(logits: &Tensor, set: &ImageSet) -> (Map<String, Value>, Vec<Vec<usize>>) {
    let gold: Vec<i64> = set.items.iter().map(|(_, l)| *l as i64).collect();
    let k = set.labels.len();
    let loss = logits.cross_entropy_for_logits(&Tensor::from_slice(&gold)).double_value(&[]);
    let pred = Vec::<i64>::try_from(logits.argmax(-1, false)).unwrap_or_default();
    let cm = crate::eval::classification::confusion_matrix(&pred, &gold, k);
    let correct: usize = (0..k).map(|i| cm[i][i]).sum();
    let per_class: Map<String, Value> =
        set.labels.iter().enumerate().map(|(i, name)| (name.clone(), json!(cm[i][i] as f64 / cm[i].iter().sum::<usize>().max(1) as f64))).collect();
    let mut m = Map::new();
    m.insert("eval_accuracy".into(), json!(correct as f64 / gold.len().max(1) as f64));
    m.insert("eval_loss".into(), json!(loss));
    m.insert("eval_per_class_accuracy".into(), Value::Object(per_class));
    m.insert("eval_samples".into(), json!(gold.len()));
    (m, cm)
}

/// Writes `eval_results.json`, `confusion_matrix.txt` and `confusion_matrix.png` into `out`.
pub fn write_eval(out: &Path, mut metrics: Map<String, Value>, labels: &[String], cm: &[Vec<usize>], extra: Map<String, Value>) -> Result<Map<String, Value>> {
    crate::io::write_atomic(&out.join("confusion_matrix.txt"), crate::eval::classification::confusion_text(labels, cm).as_bytes())?;
    crate::eval::plots::confusion_matrix(&out.join("confusion_matrix.png"), labels, cm)?;
    metrics.extend(extra);
    crate::io::write_json_sorted(&out.join("eval_results.json"), metrics)
}

/// Writes the model directory: `model.safetensors` and its `config.json`.
pub fn save_model(m: &LoadedImageModel, dir: &Path) -> Result<()> {
    checkpoint::save_safetensors(&m.vs, &dir.join("model.safetensors"))?;
    crate::io::write_json(&dir.join("config.json"), &m.config)
}

/// Full fine-tuning: batches decoded with the train transform, the next one ahead of time.
struct FullWork<'a> {
    model: &'a LoadedImageModel,
    train: Arc<ImageSet>,
    eval: &'a ImageSet,
    seed: u64,
    eval_batch_size: usize,
    best_dir: PathBuf,
    /// Batches being decoded ahead: (indices, step, decoder thread).
    pending: Vec<(Vec<usize>, usize, JoinHandle<Result<Tensor>>)>,
}

impl FullWork<'_> {
    fn spawn(&self, indices: &[usize], step: usize) -> JoinHandle<Result<Tensor>> {
        let (set, idx, seed) = (Arc::clone(&self.train), indices.to_vec(), self.seed);
        let (size, norm) = (self.model.config.image_size, self.model.config.normalize());
        std::thread::spawn(move || batch(&set, &idx, |i| Transform::Train { size, seed: aug_seed(seed, step, i) }, norm))
    }
}

impl Workload for FullWork<'_> {
    fn prefetch(&mut self, indices: &[usize], step: usize) {
        // The loop announces the batch after the one it is about to run; two in flight suffice.
        if self.pending.len() < 2 && !self.pending.iter().any(|(i, s, _)| i == indices && *s == step) {
            self.pending.push((indices.to_vec(), step, self.spawn(indices, step)));
        }
    }

    fn batch(&mut self, indices: &[usize], step: usize) -> Result<Vec<Tensor>> {
        // Decodes for earlier steps will never be asked for (a resume, an epoch boundary): drop them.
        self.pending.retain(|(_, s, _)| *s >= step);
        let handle = match self.pending.iter().position(|(i, s, _)| i == indices && *s == step) {
            Some(k) => self.pending.remove(k).2,
            None => self.spawn(indices, step),
        };
        let x = handle.join().map_err(|_| Error::Invalid("image decoding thread panicked".into()))??;
        let device = self.model.vs.device();
        Ok(vec![crate::data::batch::upload(x, device), labels_tensor(&self.train, indices, device)])
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        Ok(self.model.net.batch_loss(b))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let (metrics, _) = score(&predict_set(self.model, self.eval, self.eval_batch_size)?, self.eval);
        let objective = metrics["eval_accuracy"].as_f64().unwrap_or(0.0);
        Ok(Evaluation { metrics, objective })
    }

    fn on_best(&mut self, _step: usize, _eval: &Evaluation) -> Result<()> {
        save_model(self.model, &self.best_dir)
    }
}

/// Linear probe: the head learns on cached pooled features of the frozen backbone.
struct ProbeWork<'a> {
    model: &'a LoadedImageModel,
    train_features: Tensor,
    train_labels: Tensor,
    eval_features: Tensor,
    eval: &'a ImageSet,
    best_dir: PathBuf,
}

impl Workload for ProbeWork<'_> {
    fn batch(&mut self, indices: &[usize], _step: usize) -> Result<Vec<Tensor>> {
        let device = self.model.vs.device();
        let idx = crate::data::batch::upload(Tensor::from_slice(&indices.iter().map(|&i| i as i64).collect::<Vec<_>>()), device);
        Ok(vec![self.train_features.index_select(0, &idx), self.train_labels.index_select(0, &idx)])
    }

    fn loss(&mut self, b: &[Tensor]) -> Result<Tensor> {
        Ok(self.model.net.head(&b[0], false).cross_entropy_for_logits(&b[1]))
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        let logits = tch::no_grad(|| self.model.net.head(&self.eval_features, false)).to_device(Device::Cpu).to_kind(Kind::Float);
        let (metrics, _) = score(&logits, self.eval);
        let objective = metrics["eval_accuracy"].as_f64().unwrap_or(0.0);
        Ok(Evaluation { metrics, objective })
    }

    fn on_best(&mut self, _step: usize, _eval: &Evaluation) -> Result<()> {
        save_model(self.model, &self.best_dir)
    }
}

fn limit(mut set: ImageSet, n: Option<usize>) -> ImageSet {
    set.items.truncate(n.unwrap_or(usize::MAX));
    set
}

pub fn run(args: &ImageArgs) -> Result<Map<String, Value>> {
    let out = &args.output_dir;
    let d = &args.data;
    let reads = [
        ("the --model directory", Some(Path::new(&args.model))),
        ("the --data-dir", Some(d.data_dir.as_path())),
        ("the --train-list", d.train_list.as_deref()),
        ("the --val-list", d.val_list.as_deref()),
        ("the --label-list", d.label_list.as_deref()),
    ];
    // The training arguments checked before the first write: a refused run leaves nothing behind.
    args.train.validate()?;
    crate::train::output_dir::prepare(out, args.resume.is_some(), args.train.overwrite_output_dir, &reads)?;
    let model_dir = hub::resolve(&args.model)?;
    let (train, eval) = args.data.load()?;
    let (train, eval) = (limit(train, args.max_train_samples), limit(eval, args.max_eval_samples));
    // Train-mode BatchNorm needs two values per channel. These backbones end at 1/32 of the input,
    // so at 32 pixels or less a one-image batch has one and its statistics turn to NaN (PyTorch's
    // Python layer refuses the same batch).
    let b = args.train.per_device_train_batch_size;
    if !args.freeze_backbone && args.image_size <= 32 && (b == 1 || train.items.len() % b == 1) {
        return Err(Error::Invalid(format!(
            "image_size {} with a training batch of one image ({} images, batch size {b}) leaves BatchNorm one value per channel in the last stage; use image_size > 32 or a batch size that leaves no single image",
            args.image_size,
            train.items.len()
        )));
    }
    let base = VisionConfig::from_file(&model_dir.join("config.json"))?;
    let arch = vision::Arch::parse(&base.architecture)?;
    tch::manual_seed(args.train.seed as i64);
    let mut m = vision::load(&model_dir, Some(&train.labels), args.net.options(arch), args.device)?;
    m.config.image_size = args.image_size;
    m.config.check_sizes(&model_dir.join("config.json")).map_err(|e| Error::Invalid(format!("--image-size: {e}")))?;
    tracing::info!(
        "loaded {} ({}); new head for {} classes; {} training / {} validation images",
        model_dir.display(),
        base.architecture,
        train.labels.len(),
        train.items.len(),
        eval.items.len()
    );
    crate::io::write_json(&out.join("run_config.json"), &json!({
        "command": "image", "args": args, "model_dir": model_dir, "model_config": m.config,
        "labels": train.labels, "environment": crate::run_info::environment(args.device),
    }))?;
    let list_hash = |p: &Option<PathBuf>| p.as_ref().map(|p| crate::train::resume::file_hash(p)).transpose();
    let run = RunContext {
        output_dir: out,
        resume: args.resume.clone(),
        fingerprint: json!({
            "command": "image", "model": args.model, "model_weights_sha256": crate::train::resume::file_hash(&checkpoint::weights_file(&model_dir)?)?,
            "train_list_sha256": list_hash(&args.data.train_list)?, "train_images": train.items.len(),
            "image_size": args.image_size, "freeze_backbone": args.freeze_backbone,
        })
        .as_object()
        .cloned()
        .expect("object literal"),
    };
    let best_dir = out.join("best_model");
    let summary = if args.freeze_backbone {
        // Only the head trains: the optimizer sees just its variables.
        let head = format!("{}.", arch.head_name());
        for (name, mut v) in m.vs.variables() {
            if !name.starts_with(&head) {
                let _ = v.requires_grad_(false);
            }
        }
        tracing::info!("frozen backbone: caching pooled features of {} + {} images", train.items.len(), eval.items.len());
        let train_features = features_set(&m, &train, args.per_device_eval_batch_size)?;
        let eval_features = features_set(&m, &eval, args.per_device_eval_batch_size)?;
        let all: Vec<usize> = (0..train.items.len()).collect();
        let train_labels = labels_tensor(&train, &all, args.device);
        let mut work = ProbeWork { model: &m, train_features, train_labels, eval_features, eval: &eval, best_dir };
        trainer::train(&m.vs, train.items.len(), &args.train, &mut work, &run)?
    } else {
        let mut work = FullWork { model: &m, train: Arc::new(train.clone()), eval: &eval, seed: args.train.seed, eval_batch_size: args.per_device_eval_batch_size, best_dir, pending: Vec::new() };
        trainer::train(&m.vs, train.items.len(), &args.train, &mut work, &run)?
    };
    save_model(&m, out)?;
    let (metrics, cm) = score(&predict_set(&m, &eval, args.per_device_eval_batch_size)?, &eval);
    let mut train_results = summary.results(train.items.len(), args.device);
    train_results.insert("freeze_backbone".into(), json!(args.freeze_backbone));
    crate::io::write_json(&out.join("train_results.json"), &train_results)?;
    crate::eval::plots::learning_curves(&out.join("train_log.jsonl"), &out.join("train_curves.png"), &format!("{} seed {}", base.architecture, args.train.seed))?;
    let mut extra = Map::new();
    extra.insert("epoch".into(), json!(summary.epoch));
    write_eval(out, metrics, &eval.labels, &cm, extra)
}

/// How `finetune image eval` runs: batch size, the seed of a fresh head, layout and device.
#[derive(Debug, Clone, Copy)]
pub struct EvalOptions {
    pub batch_size: usize,
    pub seed: u64,
    pub channels_last: bool,
    pub device: Device,
}

/// `finetune image eval`: scores a model directory on one labelled list. An ImageNet backbone
/// (no task head) gets a fresh head drawn from `seed`, which shows chance-level accuracy.
pub fn evaluate(model: &str, data: &ImageData, list: &Path, out: &Path, o: EvalOptions) -> Result<Map<String, Value>> {
    let EvalOptions { batch_size, seed, channels_last, device } = o;
    let dir = hub::resolve(model)?;
    let cfg = VisionConfig::from_file(&dir.join("config.json"))?;
    let labels = match &data.label_list {
        Some(p) => Some(images::read_label_list(p)?),
        None if !cfg.labels.is_empty() => Some(cfg.labels.clone()),
        None => None,
    };
    let set = data.load_list(list, labels)?;
    let fresh_head = cfg.labels.is_empty();
    if !fresh_head && cfg.labels != set.labels {
        return Err(Error::file(list, format!("the model's classes {:?} differ from the list's {:?}", cfg.labels, set.labels)));
    }
    tch::manual_seed(seed as i64);
    let o = NetOptionsArgs { bn_momentum: 0.1, dropout: None, drop_connect_rate: 0.0, channels_last }.options(vision::Arch::parse(&cfg.architecture)?);
    let m = vision::load(&dir, fresh_head.then_some(set.labels.as_slice()), o, device)?;
    if fresh_head {
        tracing::warn!("{} has no task head: scoring a fresh {}-class head (seed {seed}), i.e. chance level", dir.display(), set.labels.len());
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (metrics, cm) = score(&predict_set(&m, &set, batch_size)?, &set);
    let mut extra = Map::new();
    extra.insert("eval_list".into(), json!(list));
    extra.insert("fresh_head".into(), json!(fresh_head));
    write_eval(out, metrics, &set.labels, &cm, extra)
}
