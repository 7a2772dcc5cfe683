//! Evaluation: official metrics, task scoring, statistics over runs, reports, comparisons, charts.
pub mod classification;
pub mod compare;
pub mod compress_report;
pub mod glue;
pub mod lexicon;
pub mod metrics;
pub mod plots;
pub mod qa_post;
pub mod references;
pub mod seqeval;
pub mod squad;
pub mod report;
pub mod stats;
