//! Image data: list parsing errors (format, label range, paths escaping the root), missing and
//! corrupt images (errors naming the file, or counted with --skip-bad-images), ImageFolder classes,
//! the transforms, the evaluation's confusion matrix, and a whole `finetune image` run in each memory
//! layout.
use finetune::data::images::{self, Normalize, Transform};
use finetune::model::vision::{resnet::Depth, Arch, ImageClassifier, NetOptions};
use finetune::train::image::{score, EvalOptions, ImageArgs, ImageData, NetOptionsArgs};
use finetune::train::args::{SaveStrategy, TrainArgs};
use serde_json::Value;
use std::path::Path;
use std::sync::Mutex;

/// The tests that train take turns: libtorch work on another thread of this process perturbs a
/// run's arithmetic (see tests/glue_run.rs), and one of them compares two same-seed runs.
static TRAINING: Mutex<()> = Mutex::new(());
use tch::{nn::VarStore, Device, Tensor};

fn write_png(path: &Path, rgb: [u8; 3], w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb)).save(path).unwrap();
}

/// A PaddleHub-style dataset: images/{a,b}/*.png, lists beside images/.
fn dataset(dir: &Path, train_lines: &str) -> ImageData {
    write_png(&dir.join("images/a/1.png"), [255, 0, 0], 40, 30);
    write_png(&dir.join("images/a/2.png"), [250, 10, 0], 30, 40);
    write_png(&dir.join("images/b/1.png"), [0, 0, 255], 50, 50);
    std::fs::write(dir.join("label_list.txt"), "a\nb\n").unwrap();
    std::fs::write(dir.join("train_list.txt"), train_lines).unwrap();
    std::fs::write(dir.join("validate_list.txt"), "b/1.png 1\n").unwrap();
    ImageData { data_dir: dir.join("images"), train_list: None, val_list: None, label_list: None, skip_bad_images: false }
}

fn load_err(train_lines: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), train_lines).load().unwrap_err().to_string()
}

#[test]
fn lists_load_with_labels_from_beside_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = dataset(dir.path(), "a/1.png 0\na/2.png 0\r\n\nb/1.png 1\n").load().unwrap();
    assert_eq!(train.labels, vec!["a", "b"]);
    assert_eq!(train.items.len(), 3);
    assert_eq!(train.items[2], ("b/1.png".into(), 1));
    assert_eq!(val.items.len(), 1);
}

#[test]
fn bad_list_lines_name_the_file_and_line() {
    let e = load_err("a/1.png 0\na/2.png\n");
    assert!(e.contains("train_list.txt:2") && e.contains("<image path> <label index>"), "{e}");
    let e = load_err("a/1.png zero\n");
    assert!(e.contains("train_list.txt:1") && e.contains("not a non-negative integer"), "{e}");
    let e = load_err("a/1.png 0\nb/1.png 2\n");
    assert!(e.contains("train_list.txt:2") && e.contains("out of range") && e.contains("2 classes"), "{e}");
}

#[test]
fn paths_that_escape_the_root_are_refused() {
    for line in ["../secret.png 0", "a/../../x.png 0", "/etc/passwd 0"] {
        let e = load_err(&format!("a/1.png 0\n{line}\n"));
        assert!(e.contains("train_list.txt:2") && e.contains("must be relative and stay inside"), "{line}: {e}");
    }
}

#[test]
fn missing_and_corrupt_images_fail_naming_the_file_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = dataset(dir.path(), "a/1.png 0\na/broken.jpg 0\na/gone.png 0\nb/1.png 1\n");
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.extend(std::iter::repeat_n(0x42, 200));
    std::fs::write(dir.path().join("images/a/broken.jpg"), &jpeg).unwrap();
    let e = data.load().unwrap_err().to_string();
    assert!(e.contains("2 bad image(s)") && (e.contains("broken.jpg") || e.contains("gone.png")), "{e}");
    data.skip_bad_images = true;
    let (train, _) = data.load().unwrap();
    assert_eq!(train.items.iter().map(|(p, _)| p.to_string_lossy().into_owned()).collect::<Vec<_>>(), vec!["a/1.png", "b/1.png"]);
}

#[test]
fn image_folder_classes_are_sorted_sub_folders() {
    let dir = tempfile::tempdir().unwrap();
    write_png(&dir.path().join("train/zebra/1.png"), [1, 2, 3], 8, 8);
    write_png(&dir.path().join("train/ant/1.png"), [1, 2, 3], 8, 8);
    write_png(&dir.path().join("val/zebra/1.png"), [1, 2, 3], 8, 8);
    write_png(&dir.path().join("val/ant/1.png"), [1, 2, 3], 8, 8);
    std::fs::write(dir.path().join("train/ant/notes.txt"), "not an image").unwrap();
    let data = ImageData { data_dir: dir.path().into(), train_list: None, val_list: None, label_list: None, skip_bad_images: false };
    let (train, val) = data.load().unwrap();
    assert_eq!(train.labels, vec!["ant", "zebra"]);
    assert_eq!(train.items, vec![("ant/1.png".into(), 0), ("zebra/1.png".into(), 1)]);
    assert_eq!(val.items.len(), 2);
}

#[test]
fn transforms_give_normalised_crops_and_seeded_augmentation() {
    let img = image::RgbImage::from_fn(300, 200, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
    let eval = images::to_input(&img, Transform::Eval { resize: 256, size: 224 }, Normalize::HALF);
    assert_eq!(eval.len(), 3 * 224 * 224);
    // The blue channel is constant 128: (128/255 - 0.5) / 0.5.
    let blue = &eval[2 * 224 * 224..];
    assert!(blue.iter().all(|v| (v - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-6));
    let a = images::to_input(&img, Transform::Train { size: 64, seed: 1 }, Normalize::IMAGENET);
    let b = images::to_input(&img, Transform::Train { size: 64, seed: 1 }, Normalize::IMAGENET);
    let c = images::to_input(&img, Transform::Train { size: 64, seed: 2 }, Normalize::IMAGENET);
    assert_eq!(a.len(), 3 * 64 * 64);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn score_counts_the_confusion_matrix_and_per_class_accuracy() {
    let set = images::ImageSet {
        root: ".".into(),
        items: vec![("x".into(), 0), ("y".into(), 0), ("z".into(), 1), ("w".into(), 2)],
        labels: vec!["a".into(), "b".into(), "c".into()],
    };
    let logits = Tensor::from_slice(&[5.0f32, 0., 0., 0., 5., 0., 0., 5., 0., 5., 0., 0.]).view([4, 3]);
    let (m, cm) = score(&logits, &set);
    assert_eq!(cm, vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 0, 0]]);
    assert_eq!(m["eval_accuracy"].as_f64().unwrap(), 0.5);
    assert_eq!(m["eval_per_class_accuracy"]["a"].as_f64().unwrap(), 0.5);
    assert_eq!(m["eval_per_class_accuracy"]["c"].as_f64().unwrap(), 0.0);
}

/// Three training images in classes a, a, b and a random backbone beside them.
fn run_setup(dir: &Path) -> (ImageData, std::path::PathBuf) {
    let data = dataset(dir, "a/1.png 0\na/2.png 0\nb/1.png 1\n");
    let backbone = dir.join("backbone");
    std::fs::create_dir_all(&backbone).unwrap();
    random_backbone(&backbone);
    (data, backbone)
}

/// A ResNet-18 "ImageNet backbone" with random weights: config.json + model.safetensors.
fn random_backbone(dir: &Path) {
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let o = NetOptions { bn_momentum: 0.1, dropout: 0.0, drop_connect_rate: 0.0, channels_last: false };
    ImageClassifier::new(&vs.root(), Arch::ResNet(Depth::R18), 1000, o);
    finetune::model::checkpoint::save_safetensors(&vs, &dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"architecture": "resnet18"}"#).unwrap();
}

fn train_image(backbone: &Path, data: &ImageData, out: &Path, image_size: u32, channels_last: bool) -> finetune::Result<serde_json::Map<String, Value>> {
    let train = TrainArgs { num_train_epochs: 2.0, per_device_train_batch_size: 2, save_strategy: SaveStrategy::No, logging_steps: 1, ..TrainArgs::default() };
    let args = ImageArgs {
        model: backbone.to_string_lossy().into_owned(),
        data: data.clone(),
        output_dir: out.to_path_buf(),
        image_size,
        freeze_backbone: false,
        net: NetOptionsArgs { bn_momentum: 0.1, dropout: None, drop_connect_rate: 0.0, channels_last },
        train,
        per_device_eval_batch_size: 4,
        device: Device::Cpu,
        max_train_samples: None,
        max_eval_samples: None,
        resume: None,
    };
    finetune::train::image::run(&args)
}

#[test]
fn image_runs_in_channels_last_are_deterministic_and_save_plain_weights() {
    let _alone = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (data, backbone) = run_setup(dir.path());
    let runs: Vec<_> = [("nchw", false), ("nhwc", true), ("nhwc-again", true)]
        .iter()
        .map(|(name, cl)| (dir.path().join(name), train_image(&backbone, &data, &dir.path().join(name), 64, *cl).unwrap()))
        .collect();
    let config: Value = serde_json::from_slice(&std::fs::read(runs[1].0.join("run_config.json")).unwrap()).unwrap();
    assert_eq!(config["args"]["net"]["channels_last"], true, "the run config records the layout");
    assert_eq!(runs[1].1, runs[2].1, "same seed, same layout: same metrics");
    // The saved model is plain row-major: scored in either layout it gives the run's own metrics.
    for cl in [false, true] {
        let o = EvalOptions { batch_size: 4, seed: 0, channels_last: cl, device: Device::Cpu };
        let (model, out) = (runs[1].0.to_string_lossy().into_owned(), dir.path().join(format!("eval-{cl}")));
        let r = finetune::train::image::evaluate(&model, &data, &dir.path().join("validate_list.txt"), &out, o).unwrap();
        assert_eq!(r["eval_accuracy"], runs[1].1["eval_accuracy"]);
        let (got, want) = (r["eval_loss"].as_f64().unwrap(), runs[1].1["eval_loss"].as_f64().unwrap());
        assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "eval loss {got} (channels_last {cl}) vs the run's {want}");
    }
}

#[test]
fn a_single_image_batch_that_would_leave_batchnorm_one_value_is_refused() {
    let _alone = TRAINING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let (data, backbone) = run_setup(dir.path());
    // Three images in batches of two: the last batch has one image, at 32 pixels one value per channel.
    let e = train_image(&backbone, &data, &dir.path().join("out"), 32, false).unwrap_err().to_string();
    assert!(e.contains("image_size 32") && e.contains("one value per channel"), "{e}");
}
