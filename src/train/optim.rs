//! AdamW with decoupled weight decay applied to every weight except biases and LayerNorm weights
//! (run_glue.py / Trainer's grouping), plus global-norm gradient clipping done on the device
//! without a host sync, as `torch.nn.utils.clip_grad_norm_` does.
use crate::error::Result;
use tch::{nn::VarStore, COptimizer, Kind, Tensor};

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AdamWConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
}

pub struct AdamW {
    opt: COptimizer,
    params: Vec<Tensor>,
}

/// Biases and LayerNorm weights take no weight decay.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

impl AdamW {
    pub fn new(vs: &VarStore, cfg: AdamWConfig) -> Result<Self> {
        let mut opt = COptimizer::adamw(cfg.learning_rate, cfg.adam_beta1, cfg.adam_beta2, cfg.weight_decay, cfg.adam_epsilon, false)?;
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        // A fixed parameter order keeps the optimizer's arithmetic identical from run to run.
        named.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, t) in &named {
            opt.add_parameters(t, if decays(name) { 0 } else { 1 })?;
        }
        opt.set_weight_decay_group(0, cfg.weight_decay)?;
        opt.set_weight_decay_group(1, 0.0)?;
        Ok(AdamW { opt, params: named.into_iter().map(|(_, t)| t).collect() })
    }

    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        Ok(self.opt.set_learning_rate(lr)?)
    }

    pub fn zero_grad(&mut self) -> Result<()> {
        Ok(self.opt.zero_grad()?)
    }

    pub fn step(&mut self) -> Result<()> {
        Ok(self.opt.step()?)
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before
    /// clipping as a 0-d device tensor (read it only when logging, to avoid syncs).
    pub fn clip_grad_norm(&self, max_norm: f64) -> Tensor {
        tch::no_grad(|| {
            let norms: Vec<Tensor> =
                self.params.iter().map(|p| p.grad()).filter(|g| g.defined()).map(|g| g.norm().to_kind(Kind::Float)).collect();
            let total = Tensor::stack(&norms, 0).norm();
            let coef = (max_norm / (&total + 1e-6)).clamp_max(1.0);
            for p in &self.params {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.g_mul_(&coef);
                }
            }
            total
        })
    }
}
