//! Data: task readers, tokenisation and batching.
pub mod batch;
pub mod classify;
pub mod conll;
pub mod glue;
pub mod images;
pub mod ner_features;
pub mod qa_features;
pub mod spm;
pub mod squad;
pub mod table;
pub mod tokenize;
pub mod tsv;
