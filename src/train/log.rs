//! `train_log.jsonl`: one JSON object per line for every logging step and evaluation, flushed as
//! written so a crashed run still leaves its history.
use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct RunLog {
    path: PathBuf,
    file: std::fs::File,
}

impl RunLog {
    pub fn create(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(RunLog { path: path.into(), file })
    }

    /// Reopens the log of a resumed run, dropping whatever was written after `offset` bytes (records
    /// of steps the resumed run will redo).
    pub fn resume(path: &Path, offset: u64) -> Result<Self> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len < offset {
            return Err(Error::file(path, format!("has {len} bytes but the checkpoint was taken after {offset}; the log was truncated")));
        }
        file.set_len(offset).map_err(|e| Error::io(path, e))?;
        Ok(RunLog { path: path.into(), file })
    }

    /// Bytes written so far.
    pub fn offset(&self) -> Result<u64> {
        self.file.metadata().map(|m| m.len()).map_err(|e| Error::io(&self.path, e))
    }

    pub fn record(&mut self, value: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").and_then(|_| self.file.flush()).map_err(|e| Error::io(&self.path, e))
    }
}
