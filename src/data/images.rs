//! Image classification data: PaddleHub list files (`<relative path> <label index>` lines plus a
//! `label_list.txt`) or an ImageFolder tree (one sub-folder per class), JPEG/PNG decoding with the
//! image crate, and the torchvision transforms the backbones were trained with (eval: resize the
//! shorter side to 256, centre-crop 224; train: random-resized-crop + horizontal flip, seeded).
use crate::error::{Error, Result};
use image::imageops::FilterType;
use image::RgbImage;
use rand::{Rng, SeedableRng};
use std::path::{Component, Path, PathBuf};

/// Labelled images under one root.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub root: PathBuf,
    pub items: Vec<(PathBuf, usize)>,
    pub labels: Vec<String>,
}

/// Reads `label_list.txt`: one class name per line, in label order.
pub fn read_label_list(path: &Path) -> Result<Vec<String>> {
    let text = String::from_utf8(crate::io::read(path)?).map_err(|_| Error::file(path, "not UTF-8 text"))?;
    let labels: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if labels.is_empty() {
        return Err(Error::file(path, "no class names"));
    }
    Ok(labels)
}

/// A relative path that stays inside the data root (no absolute paths, no `..`).
fn inside_root(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(rel);
    p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)).then_some(p)
}

/// Reads a PaddleHub list: `<path relative to root> <label index>` per line.
pub fn read_list(root: &Path, list: &Path, labels: Vec<String>) -> Result<ImageSet> {
    let text = String::from_utf8(crate::io::read(list)?).map_err(|_| Error::file(list, "not UTF-8 text"))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |msg: String| Error::data(list, i + 1, msg);
        // The label is the last field, so paths may contain spaces.
        let (rel, label) = line.trim().rsplit_once(char::is_whitespace).ok_or_else(|| bad(format!("expected `<image path> <label index>`, got `{line}`")))?;
        let label: usize = label.parse().map_err(|_| bad(format!("label `{label}` is not a non-negative integer")))?;
        if label >= labels.len() {
            return Err(bad(format!("label {label} out of range: the label list has {} classes", labels.len())));
        }
        let rel = rel.trim();
        let path = inside_root(rel).ok_or_else(|| bad(format!("path `{rel}` must be relative and stay inside {}", root.display())))?;
        items.push((path, label));
    }
    if items.is_empty() {
        return Err(Error::file(list, "no images listed"));
    }
    Ok(ImageSet { root: root.into(), items, labels })
}

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// Reads an ImageFolder tree: classes are the sub-folders in sorted order (torchvision's rule).
pub fn read_folder(root: &Path) -> Result<ImageSet> {
    let read_dir = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d).map_err(|e| Error::io(d, e))?.flatten().map(|e| e.path()).collect();
        v.sort();
        Ok(v)
    };
    let classes: Vec<PathBuf> = read_dir(root)?.into_iter().filter(|p| p.is_dir()).collect();
    let mut items = Vec::new();
    let mut labels = Vec::new();
    for (label, dir) in classes.iter().enumerate() {
        labels.push(dir.file_name().expect("read_dir entries have names").to_string_lossy().into_owned());
        for f in read_dir(dir)?.into_iter().filter(|p| p.is_file() && is_image(p)) {
            items.push((f.strip_prefix(root).expect("listed under root").to_path_buf(), label));
        }
    }
    if items.is_empty() {
        return Err(Error::file(root, "no class sub-folders with .jpg/.jpeg/.png images"));
    }
    Ok(ImageSet { root: root.into(), items, labels })
}

/// Decodes an image file to RGB.
pub fn decode(path: &Path) -> Result<RgbImage> {
    let bytes = crate::io::read(path)?;
    let img = image::load_from_memory(&bytes).map_err(|e| Error::file(path, format!("cannot decode image: {e}")))?;
    Ok(img.to_rgb8())
}

/// Per-channel normalisation the backbone was trained with, applied after scaling to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalize {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    /// torchvision's ImageNet statistics.
    pub const IMAGENET: Normalize = Normalize { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    /// (x − 0.5) / 0.5: TensorFlow's EfficientNet-Lite preprocessing.
    pub const HALF: Normalize = Normalize { mean: [0.5; 3], std: [0.5; 3] };
}

/// How an image becomes the model's input.
#[derive(Debug, Clone, Copy)]
pub enum Transform {
    /// Resize the shorter side to `resize`, centre-crop `size`.
    Eval { resize: u32, size: u32 },
    /// RandomResizedCrop(size, scale 0.08–1, ratio 3/4–4/3) + horizontal flip with p = 0.5,
    /// drawn from `seed` (one seed per image and epoch).
    Train { size: u32, seed: u64 },
}

fn resize(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    image::imageops::resize(img, w.max(1), h.max(1), FilterType::Triangle)
}

/// torchvision's RandomResizedCrop.get_params: ten tries at a crop of random area and aspect
/// ratio, then a centre crop clamped to the ratio range.
fn random_crop_box(w: u32, h: u32, rng: &mut impl Rng) -> (u32, u32, u32, u32) {
    let area = (w * h) as f64;
    let (lr0, lr1) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target = area * rng.gen_range(0.08..1.0);
        let ratio = rng.gen_range(lr0..lr1).exp();
        let cw = (target * ratio).sqrt().round() as u32;
        let ch = (target / ratio).sqrt().round() as u32;
        if cw > 0 && ch > 0 && cw <= w && ch <= h {
            return (rng.gen_range(0..=w - cw), rng.gen_range(0..=h - ch), cw, ch);
        }
    }
    let in_ratio = w as f64 / h as f64;
    let (cw, ch) = if in_ratio < 3.0 / 4.0 {
        (w, (w as f64 / (3.0 / 4.0)).round() as u32)
    } else if in_ratio > 4.0 / 3.0 {
        ((h as f64 * 4.0 / 3.0).round() as u32, h)
    } else {
        (w, h)
    };
    ((w - cw.min(w)) / 2, (h - ch.min(h)) / 2, cw.min(w), ch.min(h))
}

/// Applies `t` and returns CHW floats, normalised.
pub fn to_input(img: &RgbImage, t: Transform, norm: Normalize) -> Vec<f32> {
    let out = match t {
        Transform::Eval { resize: short, size } => {
            let (w, h) = img.dimensions();
            let s = short as f64 / w.min(h) as f64;
            // torchvision truncates the longer side: int(long * short / shorter).
            let (nw, nh) = if w <= h { (short, (h as f64 * s) as u32) } else { ((w as f64 * s) as u32, short) };
            let r = resize(img, nw, nh);
            let (x, y) = (((nw as f64 - size as f64) / 2.0).round().max(0.0) as u32, ((nh as f64 - size as f64) / 2.0).round().max(0.0) as u32);
            image::imageops::crop_imm(&r, x, y, size.min(nw), size.min(nh)).to_image()
        }
        Transform::Train { size, seed } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let (w, h) = img.dimensions();
            let (x, y, cw, ch) = random_crop_box(w, h, &mut rng);
            let crop = image::imageops::crop_imm(img, x, y, cw, ch).to_image();
            let mut r = resize(&crop, size, size);
            if rng.gen_bool(0.5) {
                image::imageops::flip_horizontal_in_place(&mut r);
            }
            r
        }
    };
    let (w, h) = out.dimensions();
    let plane = (w * h) as usize;
    let mut chw = vec![0f32; 3 * plane];
    for (i, p) in out.pixels().enumerate() {
        for c in 0..3 {
            chw[c * plane + i] = (p[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    chw
}
