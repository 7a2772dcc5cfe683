//! Training checkpoints (`<output-dir>/checkpoint-<step>/`, as HF Trainer names them): everything an
//! exact resume needs — weights, AdamW moments, the loop's state and metric history, and the run's
//! fingerprint — written into a temporary directory, fsynced, renamed into place, and described by
//! a `manifest.json` (sizes and sha256 of every file) written last. A checkpoint whose manifest is
//! missing or disagrees with its files is incomplete and is skipped with a warning.
//!
//! The data order of an epoch is a function of (seed, epoch), so the position in the data is the
//! global step and nothing is replayed; the dropout generators run on from step to step (as in
//! transformers' Trainer, whose random stream finetune follows), so their states are saved.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "trainer_state.json";
pub const FINGERPRINT_FILE: &str = "run_fingerprint.json";
pub const RNG_FILE: &str = "rng_state.safetensors";
/// The generator states of rank `rank` of a data-parallel run (rank 0's, or a single process's:
/// [`RNG_FILE`]), as Trainer's `rng_state_{rank}.pth`.
pub fn rng_file(rank: usize) -> String {
    match rank {
        0 => RNG_FILE.to_string(),
        r => format!("rng_state_{r}.safetensors"),
    }
}

/// Every file a complete checkpoint holds besides its manifest.
pub const CHECKPOINT_FILES: [&str; 5] = [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, FINGERPRINT_FILE, RNG_FILE];
const MANIFEST_FILE: &str = "manifest.json";

/// The loop's state after `global_step` optimizer steps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainerState {
    pub global_step: usize,
    pub epoch: f64,
    /// Bytes of `train_log.jsonl` written up to this step; a resumed run truncates the log here.
    pub log_offset: u64,
    pub loss_sum: f64,
    /// Loss accumulated since the last logging step (exact f32 value of the device accumulator).
    pub interval_loss: f64,
    pub interval_steps: usize,
    pub interval_examples: usize,
    pub examples_seen: usize,
    pub best_step: Option<usize>,
    pub best_objective: Option<f64>,
    /// Evaluations since the last improvement larger than the early-stopping threshold.
    pub patience_counter: usize,
    pub skipped_nonfinite_steps: usize,
    /// fp16 loss scaler (scale, growth tracker).
    #[serde(default)]
    pub grad_scaler: Option<(f64, i64)>,
    /// Every evaluation so far (metrics with step and epoch).
    pub log_history: Vec<Value>,
}

#[derive(Serialize, Deserialize)]
struct ManifestEntry {
    file: String,
    bytes: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    global_step: usize,
    files: Vec<ManifestEntry>,
}

pub fn checkpoint_dir(output_dir: &Path, step: usize) -> PathBuf {
    output_dir.join(format!("checkpoint-{step}"))
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok((n, format!("{:x}", h.finalize())))
}

/// Writes `checkpoint-<step>` atomically: `fill` writes the payload files into a temporary
/// directory (each file fsynced by `io::write_atomic`), the manifest goes in last, then one rename.
pub fn save(output_dir: &Path, step: usize, fill: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
    let final_dir = checkpoint_dir(output_dir, step);
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".checkpoint-{step}.tmp"))
        .tempdir_in(output_dir)
        .map_err(|e| Error::io(output_dir, e))?;
    fill(tmp.path())?;
    let mut files = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .map_err(|e| Error::io(tmp.path(), e))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    for file in names {
        let (bytes, sha256) = sha256_file(&tmp.path().join(&file))?;
        files.push(ManifestEntry { file, bytes, sha256 });
    }
    crate::io::write_json(&tmp.path().join(MANIFEST_FILE), &Manifest { global_step: step, files })?;
    crate::io::fsync_dir(tmp.path())?;
    if final_dir.exists() {
        // A checkpoint of the same step from an earlier (interrupted) attempt: same content by
        // construction, but replace it so the manifest always describes what is there.
        std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    crate::io::fsync_dir(output_dir)?;
    Ok(final_dir)
}

/// Checks a checkpoint against its manifest; returns why it is unusable.
pub fn validate(dir: &Path) -> std::result::Result<usize, String> {
    let text = std::fs::read(dir.join(MANIFEST_FILE)).map_err(|_| format!("no {MANIFEST_FILE} (the save never finished)"))?;
    let m: Manifest = serde_json::from_slice(&text).map_err(|e| format!("{MANIFEST_FILE} is not valid: {e}"))?;
    for required in CHECKPOINT_FILES {
        if !m.files.iter().any(|f| f.file == required) {
            return Err(format!("manifest does not list {required}"));
        }
    }
    for f in &m.files {
        let path = dir.join(&f.file);
        let (bytes, sha) = sha256_file(&path).map_err(|_| format!("{} is missing", f.file))?;
        if bytes != f.bytes {
            return Err(format!("{} has {bytes} bytes, the manifest says {} (truncated?)", f.file, f.bytes));
        }
        if sha != f.sha256 {
            return Err(format!("{} does not match its sha256 in the manifest (corrupt)", f.file));
        }
    }
    Ok(m.global_step)
}

/// `checkpoint-<step>` directories of `output_dir`, newest first.
pub fn list(output_dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(output_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().is_dir().then(|| (step, e.path()))
        })
        .collect();
    found.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    found
}

/// The newest complete checkpoint of `output_dir`; incomplete ones are skipped with a warning.
pub fn latest_complete(output_dir: &Path) -> Option<PathBuf> {
    for (_, dir) in list(output_dir) {
        match validate(&dir) {
            Ok(_) => return Some(dir),
            Err(why) => tracing::warn!("skipping checkpoint {}: {why}", dir.display()),
        }
    }
    None
}

/// Deletes the oldest checkpoints of the run with `fingerprint` so that at most `limit` of them
/// remain; checkpoints of any other run are never touched.
pub fn rotate(output_dir: &Path, limit: usize, fingerprint: &Value) -> Result<()> {
    let ours = |dir: &Path| -> bool {
        std::fs::read(dir.join(FINGERPRINT_FILE)).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()).is_some_and(|f| &f == fingerprint)
    };
    let mine: Vec<(usize, PathBuf)> = list(output_dir).into_iter().filter(|(_, d)| ours(d)).collect();
    for (_, dir) in mine.into_iter().skip(limit.max(1)) {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    Ok(())
}

/// Refuses to resume when anything that shapes the trajectory differs between the checkpoint's run
/// and this one; the error lists every difference.
pub fn check_fingerprint(dir: &Path, current: &Value) -> Result<()> {
    let path = dir.join(FINGERPRINT_FILE);
    let saved: Value = serde_json::from_slice(&crate::io::read(&path)?).map_err(|e| Error::Json { path: path.clone(), source: e })?;
    let (Some(saved), Some(now)) = (saved.as_object(), current.as_object()) else {
        return Err(Error::file(&path, "expected a JSON object"));
    };
    let mut keys: Vec<&String> = saved.keys().chain(now.keys()).collect();
    keys.sort();
    keys.dedup();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| saved.get(*k) != now.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
            format!("{k}: checkpoint has {}, this command has {}", show(saved.get(k)), show(now.get(k)))
        })
        .collect();
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::file(dir, format!("refusing to resume: the run differs from the checkpoint's: {}", diffs.join("; "))))
    }
}

/// sha256 of a data file, for the fingerprint.
pub fn file_hash(path: &Path) -> Result<String> {
    Ok(sha256_file(path)?.1)
}
