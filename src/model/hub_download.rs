//! Downloading a model repository from a Hugging Face hub endpoint (`HF_ENDPOINT`, else
//! huggingface.co) into the HF cache layout that transformers and the hf-hub crate read:
//! `models--org--name/blobs/<etag>`, `snapshots/<commit>/<file>` linking to its blob, and
//! `refs/main` holding the commit. Written here rather than through hf-hub's downloader because
//! that one uses the server's `etag` header as a file name and `x-repo-commit` as a directory
//! unchecked, never verifies content, and has no read timeout: here both names must be hex
//! digests, every file is checked against its etag (sha256 for LFS files, git's blob sha1 for the
//! rest) before it is renamed into place, and nothing is written outside the repository's folder.
use super::download::{self, Digest256OrGit};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Files of a BERT-family checkpoint worth having locally; the first two are required.
pub const MODEL_FILES: &[&str] =
    &["config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];

/// The largest single file accepted from a hub (the biggest safetensors shards are a few GB).
const MAX_FILE_BYTES: u64 = 50 << 30;

/// The cache folder of `model_id` (`models--org--name`), after checking the id cannot leave it.
pub fn repo_folder(cache: &hf_hub::Cache, model_id: &str) -> Result<PathBuf> {
    let ok_part = |p: &str| !p.is_empty() && p != "." && p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let parts: Vec<&str> = model_id.split('/').collect();
    if parts.len() > 2 || !parts.iter().all(|p| ok_part(p)) {
        return Err(Error::Download(format!("{model_id:?} is not a hub model id (org/name of letters, digits, - _ .)")));
    }
    Ok(cache.path().join(format!("models--{}", parts.join("--"))))
}

fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()).trim_end_matches('/').to_string()
}

/// What the hub says of one file before it is fetched.
struct FileMeta {
    commit: String,
    digest: Digest256OrGit,
    size: u64,
}

/// HEAD of a file's resolve URL, following only redirects that stay on the endpoint (a renamed
/// repository), as huggingface_hub does; None when the file does not exist.
fn head(url: &str, auth: &[(&str, String)]) -> Result<Option<FileMeta>> {
    let mut url = url.to_string();
    for _ in 0..5 {
        let mut req = download::agent(&url, 0).head(&url);
        for (k, v) in auth {
            req = req.set(k, v);
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) => return Ok(None),
            Err(ureq::Error::Status(code @ (401 | 403), _)) => {
                return Err(Error::Download(format!("{}: HTTP {code}: the repository is private or gated; set HF_TOKEN", download::redact(&url))))
            }
            Err(e) => return Err(download::describe(&url, e)),
        };
        if (300..400).contains(&resp.status()) {
            match resp.header("location") {
                Some(loc) if loc.starts_with('/') => {
                    url = format!("{}{loc}", endpoint());
                    continue;
                }
                _ => {}
            }
        }
        let bad = |m: String| Error::Download(format!("{}: {m}; refused", download::redact(&url)));
        let commit = resp.header("x-repo-commit").unwrap_or_default().to_string();
        if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad(format!("x-repo-commit {commit:?} is not a commit hash")));
        }
        let etag = resp.header("x-linked-etag").or_else(|| resp.header("etag")).unwrap_or_default();
        let digest = Digest256OrGit::from_etag(etag).map_err(bad)?;
        let size = resp.header("x-linked-size").or_else(|| resp.header("content-length")).and_then(|s| s.trim().parse::<u64>().ok());
        let size = size.ok_or_else(|| bad("no file size announced".into()))?;
        if size > MAX_FILE_BYTES {
            return Err(bad(format!("{size} bytes announced, over the {MAX_FILE_BYTES}-byte limit")));
        }
        return Ok(Some(FileMeta { commit, digest, size }));
    }
    Err(Error::Download(format!("{}: too many redirects", download::redact(&url))))
}

/// Points `link` at `target` (relative), replacing what was there in one rename.
fn link_atomically(target: &Path, link: &Path) -> Result<()> {
    let dir = link.parent().ok_or_else(|| Error::file(link, "no parent directory"))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".{}.link-tmp", link.file_name().unwrap_or_default().to_string_lossy()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, link).map_err(|e| Error::io(link, e))?;
    crate::io::fsync_dir(dir)
}

/// Fetches one file of `model_id` at `revision` into the cache; Ok(None) if the hub has no such
/// file, else the commit it belongs to.
fn fetch_file(folder: &Path, model_id: &str, revision: &str, file: &str, token: Option<&str>) -> Result<Option<String>> {
    let url = format!("{}/{model_id}/resolve/{revision}/{file}", endpoint());
    let auth: Vec<(&str, String)> = token.map(|t| ("authorization", format!("Bearer {t}"))).into_iter().collect();
    let Some(meta) = head(&url, &auth)? else { return Ok(None) };
    let blob = folder.join("blobs").join(meta.digest.hex());
    if !blob.is_file() {
        download::fetch_to(&url, &auth, &blob, MAX_FILE_BYTES, Some(meta.size), Some(&meta.digest), meta.size > 1 << 20)?;
    }
    let link = folder.join("snapshots").join(&meta.commit).join(file);
    link_atomically(&Path::new("../../blobs").join(meta.digest.hex()), &link)?;
    Ok(Some(meta.commit))
}

/// Downloads `model_id`'s config, weights and tokenizer files, all at the commit `main` names
/// when config.json is fetched; returns the snapshot directory.
pub fn download_repo(cache: &hf_hub::Cache, model_id: &str) -> Result<PathBuf> {
    let folder = repo_folder(cache, model_id)?;
    let token = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()).or_else(|| cache.token());
    let token = token.as_deref();
    let commit = fetch_file(&folder, model_id, "main", "config.json", token)?.ok_or_else(|| Error::Download(format!("{model_id} has no config.json on {}", endpoint())))?;
    if fetch_file(&folder, model_id, &commit, "model.safetensors", token)?.is_none() {
        fetch_file(&folder, model_id, &commit, "pytorch_model.bin", token)?
            .ok_or_else(|| Error::Download(format!("{model_id} has neither model.safetensors nor pytorch_model.bin")))?;
    }
    let mut has_tokenizer_json = false;
    for file in &MODEL_FILES[2..] {
        // Optional: a model may ship only tokenizer.json or only vocab.txt.
        let got = fetch_file(&folder, model_id, &commit, file, token)?.is_some();
        has_tokenizer_json |= got && *file == "tokenizer.json";
    }
    if !has_tokenizer_json {
        // DeBERTa-v2/v3 ship a SentencePiece model instead (converted by data::spm).
        for file in ["spm.model", "added_tokens.json"] {
            fetch_file(&folder, model_id, &commit, file, token)?;
        }
    }
    crate::io::write_atomic(&folder.join("refs").join("main"), commit.as_bytes())?;
    Ok(folder.join("snapshots").join(commit))
}
