//! Evaluation: official metrics and task scoring.
pub mod glue;
pub mod metrics;
