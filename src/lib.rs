//! finetune: fine-tune pre-trained base models on labelled tasks, evaluate them with the official
//! metrics, and save models Hugging Face transformers can load.
//!
//! Layout follows the data flow: `data` (task readers, tokenisation, batching) → `model`
//! (encoder, heads, checkpoints) → `train` (loop, optimizer, schedule, jobs) → `eval` (metrics,
//! reports) → `infer` (prediction with a fine-tuned model) → `serve` (HTTP) → `cli`.
pub mod cli;
pub mod data;
pub mod error;
pub mod eval;
pub mod infer;
pub mod io;
pub mod model;
pub mod run_info;
pub mod serve;
pub mod torch_dist;
pub mod torch_ext;
pub mod train;

pub use error::{Error, Result};
