//! AdamW (and SGD with momentum) with weight decay applied to every weight except biases and LayerNorm weights
//! (run_glue.py / Trainer's grouping), plus global-norm gradient clipping done on the device
//! without a host sync, as `torch.nn.utils.clip_grad_norm_` does.
//!
//! The update is written out here rather than taken from libtorch's `torch::optim::AdamW` because
//! that object does not expose its moments, and an exact resume needs to save and restore them.
//! The default arithmetic is torch.optim.AdamW's single-tensor path, op for op; `adamw_torch_fused`
//! calls the same fused kernel as `torch.optim.AdamW(fused=True)`.
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use crate::torch_ext::{clip_grad_norm, fused_adamw, AdamWGroup, AdamWStep};
use tch::{nn::VarStore, Kind, Tensor};

/// Which AdamW implementation runs the update (HF's `--optim` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// torch.optim.AdamW's single-tensor path, op for op: bit-for-bit what PyTorch does on CPU.
    AdamwTorch,
    /// torch.optim.AdamW(fused=True): two kernel launches per step on CUDA, and a step skipped on
    /// the device (no host sync) when its loss or gradient is not finite.
    AdamwTorchFused,
    /// torch.optim.SGD (momentum, L2 weight decay added to the gradient, no Nesterov).
    Sgd,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "adamw_torch" => Ok(OptimizerKind::AdamwTorch),
            "adamw_torch_fused" => Ok(OptimizerKind::AdamwTorchFused),
            "sgd" => Ok(OptimizerKind::Sgd),
            _ => Err(Error::Invalid(format!("optim `{s}`; expected adamw_torch, adamw_torch_fused or sgd"))),
        }
    }
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct OptimConfig {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_epsilon: f64,
    /// SGD's momentum (`sgd` only).
    pub momentum: f64,
}

struct Param {
    name: String,
    value: Tensor,
    decay: bool,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    /// The fused kernel's per-parameter step count (a float 0-d tensor on the device).
    step: Option<Tensor>,
}

pub struct AdamW {
    cfg: OptimConfig,
    lr: f64,
    /// Updates applied so far (torch's per-parameter `step`, identical for every parameter here);
    /// the fused path keeps the count on the device instead.
    step: i64,
    params: Vec<Param>,
    kind: OptimizerKind,
    /// The fused kernel reads the learning rate from the device, so that a step captured in a
    /// CUDA graph follows the schedule: `set_lr` writes it before each step.
    lr_tensor: Option<Tensor>,
}

/// Biases and LayerNorm weights take no weight decay.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

impl AdamW {
    pub fn new(vs: &VarStore, cfg: OptimConfig, kind: OptimizerKind) -> Result<Self> {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        // A fixed parameter order keeps the arithmetic identical from run to run.
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let fused = kind == OptimizerKind::AdamwTorchFused;
        let lr_tensor = fused.then(|| Tensor::full([], cfg.learning_rate, (Kind::Float, vs.device())));
        let params = named
            .into_iter()
            .map(|(name, value)| Param {
                decay: decays(&name),
                exp_avg: value.zeros_like(),
                exp_avg_sq: value.zeros_like(),
                step: fused.then(|| Tensor::zeros([], (Kind::Float, value.device()))),
                name,
                value,
            })
            .collect();
        Ok(AdamW { cfg, lr: cfg.learning_rate, step: 0, params, kind, lr_tensor })
    }

    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        if let Some(t) = &mut self.lr_tensor {
            // The kernel computes in float32 either way: a float tensor holds the same value.
            let _ = tch::no_grad(|| t.fill_(lr));
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            let mut g = p.value.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// The gradients that exist (a parameter unused by the loss has none).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.value.grad()).filter(Tensor::defined).collect()
    }

    /// Applies one update. `skip` (a 0-d device tensor, nonzero = skip) is honoured on the device
    /// by the fused kernel; the single-tensor path must be called only for steps that land.
    pub fn step(&mut self, skip: Option<&Tensor>) -> Result<()> {
        match self.kind {
            OptimizerKind::AdamwTorch => {
                self.step_single_tensor();
                Ok(())
            }
            OptimizerKind::AdamwTorchFused => self.step_fused(skip),
            OptimizerKind::Sgd => {
                self.step_sgd();
                Ok(())
            }
        }
    }

    /// torch.optim.SGD's single-tensor update; `exp_avg` holds the momentum buffer.
    fn step_sgd(&mut self) {
        let first = self.step == 0;
        self.step += 1;
        let (momentum, wd) = (self.cfg.momentum, self.cfg.weight_decay);
        tch::no_grad(|| {
            for p in &mut self.params {
                let grad = p.value.grad();
                if !grad.defined() {
                    continue;
                }
                let mut d_p = if p.decay && wd != 0.0 { &grad + &p.value * wd } else { grad.shallow_clone() };
                if momentum != 0.0 {
                    if first {
                        p.exp_avg.copy_(&d_p);
                    } else {
                        let _ = p.exp_avg.g_mul_scalar_(momentum).g_add_(&d_p);
                    }
                    d_p = p.exp_avg.shallow_clone();
                }
                let _ = p.value.g_add_(&(d_p * -self.lr));
            }
        });
    }

    fn step_single_tensor(&mut self) {
        self.step += 1;
        let (b1, b2) = (self.cfg.adam_beta1, self.cfg.adam_beta2);
        // C pow, as Python's `**` in torch.optim.AdamW, so the bias corrections round alike.
        let bias_correction1 = 1.0 - b1.powf(self.step as f64);
        let bias_correction2_sqrt = (1.0 - b2.powf(self.step as f64)).sqrt();
        let step_size = self.lr / bias_correction1;
        tch::no_grad(|| {
            for p in &mut self.params {
                let grad = p.value.grad();
                if !grad.defined() {
                    continue;
                }
                if p.decay && self.cfg.weight_decay != 0.0 {
                    let _ = p.value.g_mul_scalar_(1.0 - self.lr * self.cfg.weight_decay);
                }
                let _ = p.exp_avg.lerp_(&grad, 1.0 - b1);
                let _ = p.exp_avg_sq.g_mul_scalar_(b2).addcmul_(&grad, &(&grad * (1.0 - b2)));
                let denom = (p.exp_avg_sq.sqrt() / bias_correction2_sqrt) + self.cfg.adam_epsilon;
                let _ = p.value.addcdiv_(&(&p.exp_avg * -step_size), &denom);
            }
        });
    }

    fn step_fused(&mut self, skip: Option<&Tensor>) -> Result<()> {
        let skip = skip.map(|s| s.to_kind(Kind::Float));
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.value.grad()).collect();
        let lr = self.lr_tensor.as_ref().expect("the fused optimizer keeps its learning rate on the device");
        for decay in [true, false] {
            let mut g = AdamWGroup { params: vec![], grads: vec![], exp_avgs: vec![], exp_avg_sqs: vec![], steps: vec![] };
            for (p, grad) in self.params.iter().zip(&grads).filter(|(p, grad)| p.decay == decay && grad.defined()) {
                g.params.push(&p.value);
                g.grads.push(grad);
                g.exp_avgs.push(&p.exp_avg);
                g.exp_avg_sqs.push(&p.exp_avg_sq);
                g.steps.push(p.step.as_ref().expect("fused parameters carry a step tensor"));
            }
            let h = AdamWStep {
                lr,
                beta1: self.cfg.adam_beta1,
                beta2: self.cfg.adam_beta2,
                weight_decay: if decay { self.cfg.weight_decay } else { 0.0 },
                eps: self.cfg.adam_epsilon,
            };
            tch::no_grad(|| fused_adamw(&g, h, skip.as_ref()))?;
        }
        Ok(())
    }

    /// Updates applied so far (reads the device counter on the fused path).
    pub fn steps_taken(&self) -> i64 {
        match self.params.iter().find_map(|p| p.step.as_ref()) {
            Some(s) => s.double_value(&[]) as i64,
            None => self.step,
        }
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before
    /// clipping as a 0-d device tensor (read it only when logging, to avoid syncs).
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<Tensor> {
        let grads = self.grads();
        if grads.is_empty() {
            return Ok(Tensor::zeros([], (Kind::Float, tch::Device::Cpu)));
        }
        tch::no_grad(|| clip_grad_norm(&grads.iter().collect::<Vec<_>>(), max_norm))
    }

    /// Writes the moments and step count as safetensors (`exp_avg.<param>`, `exp_avg_sq.<param>`,
    /// `step`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = vec![("step".into(), Tensor::from_slice(&[self.steps_taken()]))];
        for p in &self.params {
            named.push((format!("exp_avg.{}", p.name), p.exp_avg.shallow_clone()));
            named.push((format!("exp_avg_sq.{}", p.name), p.exp_avg_sq.shallow_clone()));
        }
        crate::model::checkpoint::write_safetensors(&named, path)
    }

    /// Restores what `save` wrote; every parameter must be present with its shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let mut tensors: HashMap<String, Tensor> = crate::model::checkpoint::read_safetensors(path)?.into_iter().collect();
        let mut take = |key: String, like: &Tensor| -> Result<Tensor> {
            let bad = |msg: String| Error::Tensor { path: path.into(), tensor: key.clone(), msg };
            let t = tensors.remove(&key).ok_or_else(|| bad("missing from the optimizer state".into()))?;
            if t.size() != like.size() {
                return Err(bad(format!("shape {:?}, but the parameter has {:?}", t.size(), like.size())));
            }
            Ok(t.to_kind(like.kind()).to_device(like.device()))
        };
        let step = take("step".into(), &Tensor::from_slice(&[0i64]))?;
        for p in &mut self.params {
            let m = take(format!("exp_avg.{}", p.name), &p.exp_avg)?;
            let v = take(format!("exp_avg_sq.{}", p.name), &p.exp_avg_sq)?;
            tch::no_grad(|| {
                p.exp_avg.copy_(&m);
                p.exp_avg_sq.copy_(&v);
            });
        }
        self.step = step.int64_value(&[0]);
        for p in &mut self.params {
            if let Some(s) = &mut p.step {
                let _ = s.fill_(self.step as f64);
            }
        }
        Ok(())
    }
}
