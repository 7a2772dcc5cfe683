//! Training: the optimisation loop, optimizer, LR schedule, run logs and the per-workload jobs.
pub mod glue;
pub mod log;
pub mod optim;
pub mod schedule;
pub mod trainer;
