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

    pub fn record(&mut self, value: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{value}").and_then(|_| self.file.flush()).map_err(|e| Error::io(&self.path, e))
    }
}
