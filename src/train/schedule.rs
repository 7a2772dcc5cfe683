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
    /// torch's StepLR: the rate falls by a factor every fixed number of steps.
    Step,
}

impl FromStr for SchedulerType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "linear" => Ok(SchedulerType::Linear),
            "cosine" => Ok(SchedulerType::Cosine),
            "constant" | "constant_with_warmup" => Ok(SchedulerType::Constant),
            "step" => Ok(SchedulerType::Step),
            _ => Err(Error::Invalid(format!("lr_scheduler_type `{s}`; expected linear, cosine, constant or step"))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub kind: SchedulerType,
    pub warmup_steps: usize,
    pub total_steps: usize,
    /// `Step`: optimizer steps between decays, and the factor of each.
    pub step_size: usize,
    pub gamma: f64,
}

impl Schedule {
    /// `warmup_steps` wins when positive, else `ceil(total * warmup_ratio)` (Trainer's rule).
    pub fn new(kind: SchedulerType, total_steps: usize, warmup_steps: usize, warmup_ratio: f64) -> Self {
        let warmup = if warmup_steps > 0 { warmup_steps } else { (total_steps as f64 * warmup_ratio).ceil() as usize };
        Schedule { kind, warmup_steps: warmup, total_steps, step_size: usize::MAX, gamma: 1.0 }
    }

    /// Sets the `Step` schedule's period (in optimizer steps) and factor.
    pub fn with_step_decay(self, step_size: usize, gamma: f64) -> Self {
        Schedule { step_size: step_size.max(1), gamma, ..self }
    }

    pub fn factor(&self, step: usize) -> f64 {
        let (s, w, t) = (step as f64, self.warmup_steps as f64, self.total_steps as f64);
        if step < self.warmup_steps {
            return s / w.max(1.0);
        }
        match self.kind {
            SchedulerType::Constant => 1.0,
            SchedulerType::Step => self.gamma.powi(((step - self.warmup_steps) / self.step_size) as i32),
            SchedulerType::Linear => ((t - s) / (t - w).max(1.0)).max(0.0),
            SchedulerType::Cosine => {
                let progress = (s - w) / (t - w).max(1.0);
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_then_decay_like_transformers() {
        let s = Schedule::new(SchedulerType::Linear, 10, 0, 0.2);
        assert_eq!(s.warmup_steps, 2);
        let f: Vec<f64> = (0..11).map(|k| s.factor(k)).collect();
        assert_eq!(&f[..3], &[0.0, 0.5, 1.0]);
        assert!((f[6] - 0.5).abs() < 1e-12);
        assert_eq!(f[10], 0.0);
    }

    #[test]
    fn warmup_steps_override_ratio_and_cosine_ends_at_zero() {
        let s = Schedule::new(SchedulerType::Cosine, 100, 10, 0.5);
        assert_eq!(s.warmup_steps, 10);
        assert!((s.factor(10) - 1.0).abs() < 1e-12);
        assert!((s.factor(55) - 0.5).abs() < 1e-12);
        assert!(s.factor(100).abs() < 1e-12);
        let st = Schedule::new(SchedulerType::Step, 100, 0, 0.0).with_step_decay(30, 0.1);
        assert_eq!((st.factor(0), st.factor(29)), (1.0, 1.0));
        assert!((st.factor(30) - 0.1).abs() < 1e-12 && (st.factor(95) - 1e-3).abs() < 1e-12);
        let c = Schedule::new(SchedulerType::Constant, 100, 4, 0.0);
        assert_eq!((c.factor(2), c.factor(50)), (0.5, 1.0));
    }

    #[test]
    fn unknown_scheduler_is_an_error() {
        assert!("polynomial".parse::<SchedulerType>().unwrap_err().to_string().contains("linear, cosine, constant or step"));
    }
}
