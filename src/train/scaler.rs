//! Dynamic loss scaling for fp16 training (torch.amp.GradScaler's defaults: initial scale 2^16,
//! ×2 after 2000 overflow-free steps, ×0.5 and skip the step on overflow). Everything stays on the
//! device; the overflow flag feeds the optimizer's skip instead of a host-side branch.
use crate::error::Result;
use crate::torch_ext::amp_unscale;
use tch::{Device, Kind, Tensor};

pub struct GradScaler {
    scale: Tensor,
    growth_tracker: Tensor,
    found_inf: Tensor,
}

const INIT_SCALE: f64 = 65536.0;
const GROWTH_FACTOR: f64 = 2.0;
const BACKOFF_FACTOR: f64 = 0.5;
const GROWTH_INTERVAL: i64 = 2000;

impl GradScaler {
    pub fn new(device: Device) -> Self {
        GradScaler {
            scale: Tensor::full([], INIT_SCALE, (Kind::Float, device)),
            growth_tracker: Tensor::zeros([], (Kind::Int, device)),
            found_inf: Tensor::zeros([], (Kind::Float, device)),
        }
    }

    /// The loss multiplied by the current scale, for `backward`.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        loss * &self.scale
    }

    /// Divides the gradients by the scale and returns the overflow flag (1.0 when any is NaN/inf).
    pub fn unscale(&mut self, grads: &[Tensor]) -> Result<&Tensor> {
        let _ = self.found_inf.zero_();
        let inv = self.scale.reciprocal();
        tch::no_grad(|| amp_unscale(&grads.iter().collect::<Vec<_>>(), &self.found_inf, &inv))?;
        Ok(&self.found_inf)
    }

    /// Grows or backs off the scale after a step, from the flag `unscale` set.
    pub fn update(&mut self) {
        let _ = self.scale.internal_amp_update_scale_(&self.growth_tracker, &self.found_inf, GROWTH_FACTOR, BACKOFF_FACTOR, GROWTH_INTERVAL);
    }

    /// (scale, growth tracker), host values for a checkpoint (reads the device).
    pub fn state(&self) -> (f64, i64) {
        (self.scale.double_value(&[]), self.growth_tracker.int64_value(&[]))
    }

    pub fn restore(&mut self, (scale, growth_tracker): (f64, i64)) {
        let _ = self.scale.fill_(scale);
        let _ = self.growth_tracker.fill_(growth_tracker);
    }
}
