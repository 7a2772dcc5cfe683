//! Small filesystem helpers shared by every writer: atomic writes (write to a temporary file in the
//! same directory, fsync, rename, fsync the directory) so a crash never leaves a half-written
//! checkpoint or result file.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |f| f.write_all(bytes))
}

/// Creates `path` atomically from whatever `fill` writes into the temporary file.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    // tempfile creates 0600 files; outputs are meant to be shared like any other file.
    let mut tmp = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    fill(tmp.as_file_mut()).and_then(|_| tmp.as_file().sync_all()).map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    // The rename is durable only once the directory entry is.
    fsync_dir(dir)
}

/// Flushes a directory's entries (renames, new files) to disk.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Serialises `value` as pretty JSON (with a final newline) and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| Error::Json { path: path.into(), source: e })?;
    s.push('\n');
    write_atomic(path, s.as_bytes())
}

/// Writes a JSON map with its keys sorted (as transformers writes `eval_results.json`) and returns
/// it. Jobs put no timings in such files, so equal runs give equal bytes.
pub fn write_json_sorted(path: &Path, map: serde_json::Map<String, serde_json::Value>) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let sorted: serde_json::Map<String, serde_json::Value> = entries.into_iter().collect();
    write_json(path, &sorted)?;
    Ok(sorted)
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// A JSON object file such as a checkpoint's `tokenizer_config.json`; `None` when the file is absent.
pub fn read_json_object(path: &Path) -> Result<Option<serde_json::Map<String, serde_json::Value>>> {
    if !path.is_file() {
        return Ok(None);
    }
    match serde_json::from_slice(&read(path)?).map_err(|e| Error::Json { path: path.to_path_buf(), source: e })? {
        serde_json::Value::Object(map) => Ok(Some(map)),
        _ => Err(Error::file(path, "expected a JSON object")),
    }
}

/// The path with symbolic links and `..` resolved, also for a path that does not exist yet (its
/// longest existing ancestor resolved, the rest appended).
fn resolved(path: &Path) -> std::path::PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = vec![];
    let mut p = abs.as_path();
    loop {
        if let Ok(c) = p.canonicalize() {
            return rest.iter().rev().fold(c, |acc, part| acc.join(part));
        }
        match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                p = parent;
            }
            _ => return abs,
        }
    }
}

/// Refuses a write target (`flag` names it: `--output-dir`, `--output`) that is or contains one of
/// the paths the command reads, or lies inside a model directory among them (`reads`: each with the flag that gave it, if given), so that
/// neither replacing the target nor writing into it can destroy an input. Checked before anything
/// is written or removed.
pub fn refuse_overlap(target: &Path, flag: &str, reads: &[(&str, Option<&Path>)]) -> Result<()> {
    let t = resolved(target);
    // Nothing can be lost where nothing exists (a hub id given as --model, a file not yet made).
    for (what, read) in reads.iter().filter_map(|(what, r)| r.filter(|r| r.exists()).map(|r| (what, r))) {
        let r = resolved(read);
        let relation = if t == r {
            "is"
        } else if r.starts_with(&t) {
            "contains"
        } else if t.starts_with(&r) && r.join("config.json").is_file() {
            // Inside a model directory a run's files would mix with (and replace) the model's;
            // inside a data directory they only sit beside the data, as users often put them.
            "lies inside"
        } else {
            continue;
        };
        return Err(Error::file(
            target,
            format!("{flag} {relation} {what} ({}), which this command reads: choose another {flag} (nothing was written or removed)", read.display()),
        ));
    }
    Ok(())
}
