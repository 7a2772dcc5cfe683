//! `finetune image`: fine-tune an ImageNet backbone on an image classification task (PaddleHub
//! lists or an ImageFolder tree); `image eval` scores a model directory on one labelled list.
use super::flags::{install_interrupts, parse_device, required, LayoutCli, RunCli, TrainCli};
use crate::error::{Error, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub struct ImageCli {
    #[command(subcommand)]
    pub action: Option<ImageAction>,
    #[command(flatten)]
    pub train: ImageTrainCli,
}

#[derive(Subcommand, Debug)]
pub enum ImageAction {
    /// Score a model directory on one labelled list; writes eval_results.json and the confusion matrix.
    Eval(ImageEvalCli),
}

/// Where the images are (PaddleHub lists or an ImageFolder tree).
#[derive(Args, Debug, Clone)]
pub struct ImageDataCli {
    /// Root the list paths are relative to (or an ImageFolder root with train/ and val/).
    #[arg(long, required = true)]
    pub data_dir: Option<PathBuf>,
    /// Default: train_list.txt in --data-dir or beside it.
    #[arg(long)]
    pub train_list: Option<PathBuf>,
    /// Default: validate_list.txt in --data-dir or beside it.
    #[arg(long)]
    pub val_list: Option<PathBuf>,
    /// Default: label_list.txt beside the list.
    #[arg(long)]
    pub label_list: Option<PathBuf>,
    /// Drop unreadable images with a counted warning instead of failing.
    #[arg(long)]
    pub skip_bad_images: bool,
}

impl ImageDataCli {
    fn data(self) -> Result<crate::train::image::ImageData> {
        Ok(crate::train::image::ImageData {
            data_dir: self.data_dir.ok_or_else(|| Error::Invalid("--data-dir is required".into()))?,
            train_list: self.train_list,
            val_list: self.val_list,
            label_list: self.label_list,
            skip_bad_images: self.skip_bad_images,
        })
    }
}

#[derive(Args, Debug)]
pub struct ImageTrainCli {
    /// Backbone (`efficientnet-lite0`, a timm ResNet hub id, or a model directory).
    #[arg(long, default_value = "efficientnet-lite0")]
    pub model: String,
    #[command(flatten)]
    pub data: ImageDataCli,
    #[arg(long, required = true)]
    pub output_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    /// Train only a linear classifier on the frozen backbone's pooled features.
    #[arg(long)]
    pub freeze_backbone: bool,
    /// BatchNorm momentum, PyTorch's convention.
    #[arg(long, default_value_t = 0.1)]
    pub bn_momentum: f64,
    /// Dropout before the classifier. Default: 0.2 for EfficientNet-Lite, 0 for ResNet.
    #[arg(long)]
    pub dropout: Option<f64>,
    /// EfficientNet stochastic depth rate (scaled over the blocks).
    #[arg(long, default_value_t = 0.2)]
    pub drop_connect_rate: f64,
    #[command(flatten)]
    pub layout: LayoutCli,
    #[arg(long, alias = "per-device-eval-batch-size", default_value_t = 64)]
    pub eval_batch_size: usize,
    #[command(flatten)]
    pub run: RunCli,
    #[command(flatten)]
    pub training: TrainCli,
}

#[derive(Args, Debug)]
pub struct ImageEvalCli {
    /// A `finetune image` output directory (or an ImageNet backbone: a fresh head, chance level).
    #[arg(long)]
    pub model: String,
    #[command(flatten)]
    pub data: ImageDataCli,
    /// The labelled list to score.
    #[arg(long)]
    pub list: PathBuf,
    /// Default: <model dir>/eval-<list name>/.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    pub eval_batch_size: usize,
    /// Seed of the fresh head when the model has none.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub layout: LayoutCli,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// `finetune image`, or its `eval` action.
pub fn run(i: ImageCli) -> Result<()> {
    match i.action {
        Some(ImageAction::Eval(e)) => eval(e),
        None => train(i.train),
    }
}

fn eval(e: ImageEvalCli) -> Result<()> {
    let out = match e.output_dir {
        Some(o) => o,
        None => crate::train::output_dir::eval_dir(&crate::model::hub::resolve(&e.model)?, &e.list),
    };
    let data = e.data.data()?;
    let reads = [("the --list", Some(e.list.as_path())), ("the --data-dir", Some(data.data_dir.as_path()))];
    crate::train::output_dir::prepare_eval(&out, &reads)?;
    let device = parse_device(&e.device)?;
    let o = crate::train::image::EvalOptions { batch_size: e.eval_batch_size, seed: e.seed, channels_last: e.layout.channels_last(device), device };
    let r = crate::train::image::evaluate(&e.model, &data, &e.list, &out, o)?;
    println!("{}", serde_json::to_string_pretty(&r).expect("JSON serialises"));
    eprintln!("outputs written to {}", out.display());
    Ok(())
}

fn train(t: ImageTrainCli) -> Result<()> {
    install_interrupts()?;
    let Some(_rank) = super::launch::start(&t.training.distributed, &t.run)? else { return Ok(()) };
    let (mut train, resume) = t.training.into_args(1e-3, 32, 5.0)?;
    let device = t.run.device.apply(&mut train)?;
    let args = crate::train::image::ImageArgs {
        model: t.model,
        data: t.data.data()?,
        output_dir: crate::train::ddp::output_dir(required(t.output_dir, "image", "--output-dir")?),
        image_size: t.image_size,
        freeze_backbone: t.freeze_backbone,
        net: crate::train::image::NetOptionsArgs {
            bn_momentum: t.bn_momentum,
            dropout: t.dropout,
            drop_connect_rate: t.drop_connect_rate,
            channels_last: t.layout.channels_last(device),
        },
        train,
        per_device_eval_batch_size: t.eval_batch_size,
        device,
        max_train_samples: t.run.max_train_samples,
        max_eval_samples: t.run.max_eval_samples,
        resume,
    };
    let r = crate::train::image::run(&args)?;
    println!("{}", serde_json::to_string_pretty(&r).expect("JSON serialises"));
    eprintln!("outputs written to {}", args.output_dir.display());
    Ok(())
}
