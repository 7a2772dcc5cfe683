//! Learning-rate schedules with warmup, as transformers' `get_scheduler` defines them: the factor
//! applied to the base rate before optimizer step `step` (0-based).
use crate::error::{Error, Result};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedulerType {
    Linear,
    Cosine,
    Constant,
}

impl FromStr for SchedulerType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(SchedulerType::Linear),
            "cosine" => Ok(SchedulerType::Cosine),
            "constant" | "constant_with_warmup" => Ok(SchedulerType::Constant),
            _ => Err(Error::Invalid(format!("lr_scheduler_type `{s}`; expected linear, cosine or constant"))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub kind: SchedulerType,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl Schedule {
    /// `warmup_steps` wins when positive, else `ceil(total * warmup_ratio)` (Trainer's rule).
    pub fn new(kind: SchedulerType, total_steps: usize, warmup_steps: usize, warmup_ratio: f64) -> Self {
        let warmup = if warmup_steps > 0 { warmup_steps } else { (total_steps as f64 * warmup_ratio).ceil() as usize };
        Schedule { kind, warmup_steps: warmup, total_steps }
    }

    pub fn factor(&self, step: usize) -> f64 {
        let (s, w, t) = (step as f64, self.warmup_steps as f64, self.total_steps as f64);
        if step < self.warmup_steps {
            return s / w.max(1.0);
        }
        match self.kind {
            SchedulerType::Constant => 1.0,
            SchedulerType::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            SchedulerType::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }
}
