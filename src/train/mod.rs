//! Training: the optimisation loop, optimizer, LR schedule, run logs and the per-workload jobs.
pub mod args;
pub mod classify;
pub mod glue;
pub mod graphs;
pub mod image;
pub mod cost;
pub mod interrupt;
pub mod log;
pub mod optim;
pub mod resume;
pub mod scaler;
pub mod schedule;
pub mod seq_cls;
pub mod squad;
pub mod step;
pub mod sweep;
pub mod trainer;
