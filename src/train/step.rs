//! One optimizer step's device work, shared by the training loop and `finetune bench`: forward
//! passes under autocast, (scaled) backward, unscale, clipping, and an AdamW update that is skipped
//! when the loss or gradient is not finite. On the fused path nothing here waits for the device,
//! which is what lets `train::graphs` capture a whole step in a CUDA graph.
use crate::error::{Error, Result};
use crate::torch_ext::maybe_autocast;
use crate::train::optim::{AdamW, OptimizerKind};
use crate::train::scaler::GradScaler;
use crate::train::args::TrainArgs;
use tch::{nn::VarStore, Device, Kind, Tensor};

pub struct Stepper {
    pub opt: AdamW,
    pub scaler: Option<GradScaler>,
    pub amp: Option<Kind>,
    device: Device,
    max_grad_norm: f64,
    skip_nonfinite: bool,
    step_loss: Tensor,
    /// DDP's gradient reducer, when this process is one rank of several.
    pub reducer: Option<crate::torch_dist::Reducer>,
}

/// What a finished step reports: all 0-d device tensors.
#[derive(Debug)]
pub struct StepResult {
    /// The step's loss (mean over its examples).
    pub loss: Tensor,
    /// Gradient norm before clipping.
    pub grad_norm: Tensor,
    /// 1.0 if the update was skipped (non-finite loss/gradient, or an fp16 overflow).
    pub skipped: Tensor,
}

/// One micro-batch of a step: its share of the step's examples, and its device tensors.
pub type MicroBatch = (f64, Vec<Tensor>);

/// A micro-batch's mean loss from its tensors (dropout on).
pub type LossFn<'a> = dyn FnMut(&[Tensor]) -> Result<Tensor> + 'a;

impl StepResult {
    pub fn shallow_clone(&self) -> StepResult {
        StepResult { loss: self.loss.shallow_clone(), grad_norm: self.grad_norm.shallow_clone(), skipped: self.skipped.shallow_clone() }
    }
}

impl Stepper {
    pub fn new(vs: &VarStore, args: &TrainArgs) -> Result<Self> {
        let device = vs.device();
        Ok(Stepper {
            opt: AdamW::new(vs, args.optim, args.optim_kind)?,
            scaler: args.fp16.then(|| GradScaler::new(device)),
            amp: args.autocast_dtype(),
            device,
            max_grad_norm: args.max_grad_norm,
            skip_nonfinite: args.skip_nonfinite,
            step_loss: Tensor::zeros([], (Kind::Float, device)),
            reducer: None,
        })
    }

    /// The learning rate of the coming steps (written to the device on the fused path, outside
    /// any captured step).
    pub fn set_lr(&mut self, lr: f64) {
        self.opt.set_lr(lr);
    }

    /// Whether nothing in a step waits for the device, so a CUDA graph can capture it: the fused
    /// optimizer (the loss scaler keeps its state on the device too).
    pub fn capturable(&self) -> bool {
        self.opt.kind() == OptimizerKind::AdamwTorchFused
    }

    /// A whole step: gradients of every micro-batch, then the update.
    pub fn step(&mut self, micro: &[MicroBatch], step: usize, loss: &mut LossFn) -> Result<StepResult> {
        self.begin();
        for (i, (w, tensors)) in micro.iter().enumerate() {
            // Ranks exchange gradients on the step's last micro-batch only (DDP's no_sync for the
            // others): its backward leaves every rank with the mean of their accumulated gradients.
            self.backward(*w, i + 1 == micro.len(), || loss(tensors))?;
        }
        self.finish(step)
    }

    /// Starts a step: clears gradients and the loss accumulator.
    fn begin(&mut self) {
        self.opt.zero_grad();
        self.step_loss = Tensor::zeros([], (Kind::Float, self.device));
    }

    /// Back-propagates one micro-batch's loss with weight `w` (its share of the step's examples).
    fn backward(&mut self, w: f64, sync: bool, loss: impl FnOnce() -> Result<Tensor>) -> Result<()> {
        let mut reducer = self.reducer.as_mut().filter(|_| sync);
        if let Some(r) = reducer.as_mut() {
            r.prepare_forward()?;
        }
        let loss = maybe_autocast(self.device, self.amp, loss)?;
        if let Some(r) = reducer {
            r.prepare_backward(&loss)?;
        }
        let weighted = &loss * w;
        let backward = match &self.scaler {
            Some(s) => s.scale(&weighted).f_backward(),
            None => weighted.f_backward(),
        };
        // Under DDP the gradient exchange runs inside backward: a failure there is a collective's.
        backward.map_err(|e| match self.reducer {
            Some(_) => crate::train::ddp::collective("exchanging gradients", e.into()),
            None => e.into(),
        })?;
        self.step_loss += loss.detach().to_kind(Kind::Float) * w;
        Ok(())
    }

    /// Unscales, clips and updates at the learning rate last set. `step` (1-based) names the step
    /// in errors.
    fn finish(&mut self, step: usize) -> Result<StepResult> {
        let overflow = match &mut self.scaler {
            Some(s) => Some(s.unscale(&self.opt.grads())?.shallow_clone()),
            None => None,
        };
        // As in Trainer, a non-positive max_grad_norm means no clipping (the norm is still logged).
        let max_norm = if self.max_grad_norm > 0.0 { self.max_grad_norm } else { f64::INFINITY };
        let grad_norm = self.opt.clip_grad_norm(max_norm)?;
        let loss = self.step_loss.shallow_clone();
        let mut skipped = loss.isfinite().logical_and(&grad_norm.isfinite()).logical_not().to_kind(Kind::Float);
        if let Some(o) = &overflow {
            skipped = skipped.maximum(o);
        }
        match self.opt.kind() {
            OptimizerKind::AdamwTorchFused => self.opt.step(Some(&skipped))?,
            // The single-tensor update cannot be masked on the device: decide on the host.
            OptimizerKind::AdamwTorch | OptimizerKind::Sgd => {
                if skipped.double_value(&[]) == 0.0 {
                    self.opt.step(None)?;
                } else if !self.skip_nonfinite && overflow.is_none() {
                    let l = loss.double_value(&[]);
                    let value = if l.is_finite() { grad_norm.double_value(&[]) } else { l };
                    return Err(Error::NonFinite { step, value });
                }
            }
        }
        if let Some(s) = &mut self.scaler {
            s.update();
        }
        Ok(StepResult { loss, grad_norm, skipped })
    }
}
