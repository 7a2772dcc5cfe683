//! Data: task readers, tokenisation and batching.
pub mod batch;
pub mod glue;
pub mod squad;
pub mod tokenize;
pub mod tsv;
