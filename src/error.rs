//! Typed errors of the library. Every variant names the file (and line, field or tensor) at fault
//! and what was expected, so bad input never surfaces as a panic or a silent wrong number.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    #[error("{path}:{line}: {msg}")]
    Data { path: PathBuf, line: usize, msg: String },

    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },

    #[error("checkpoint {path}: tensor `{tensor}`: {msg}")]
    Tensor { path: PathBuf, tensor: String, msg: String },

    #[error("model `{model}` not found: {msg}")]
    ModelNotFound { model: String, msg: String },

    #[error("unknown task `{0}`; expected one of: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli")]
    UnknownTask(String),

    #[error("invalid argument: {0}")]
    Invalid(String),

    #[error("download failed: {0}")]
    Download(String),

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),

    #[error("stopped by a signal after step {step}; checkpoint {checkpoint} written. Resume with the same command plus `--resume auto`")]
    Interrupted { step: usize, checkpoint: PathBuf },

    #[error("non-finite loss or gradient norm ({value}) at step {step}; lower the learning rate, or pass --skip-nonfinite to skip such steps")]
    NonFinite { step: usize, value: f64 },

    #[error("json {path}: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn data(path: impl Into<PathBuf>, line: usize, msg: impl Into<String>) -> Self {
        Error::Data { path: path.into(), line, msg: msg.into() }
    }
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File { path: path.into(), msg: msg.into() }
    }
}
