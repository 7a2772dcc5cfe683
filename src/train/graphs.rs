//! Training steps replayed from CUDA graphs (`--cuda-graphs`): the whole step (forward, backward,
//! clipping, fused AdamW) is captured once per input shape and then launched as one graph, which
//! removes the per-kernel launch cost that bounds eager PyTorch on small models.
//!
//! The recipe is `torch.cuda.graphs`' whole-network capture: the first step of a shape runs
//! eagerly on a side stream (it allocates the gradients, optimizer state and library workspaces
//! outside any graph), the second is captured on that stream and replayed, later ones copy their
//! batch into the captured input tensors and replay. The learning rate lives on the device and is
//! written before each step; gradients are zeroed in place inside the graph. Every graph draws
//! its temporaries from one shared pool, which is safe because steps run one after another and a
//! step's results are read before the next step replays.
use crate::error::{Error, Result};
use crate::torch_ext::{CudaGraph, SideStream};
use crate::train::step::{LossFn, MicroBatch, StepResult, Stepper};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Shapes beyond this many get eager steps: each graph keeps its static inputs and outputs.
pub const MAX_GRAPHS: usize = 16;

/// Shape and dtype of every tensor of every micro-batch, in order.
type Key = Vec<(Vec<i64>, Kind)>;

struct Captured {
    graph: CudaGraph,
    /// The micro-batch tensors the graph reads its batch from.
    inputs: Vec<MicroBatch>,
    result: StepResult,
}

pub struct StepGraphs {
    stream: SideStream,
    graphs: HashMap<Key, Captured>,
    /// Shapes that have had their eager warm-up step.
    warm: std::collections::HashSet<Key>,
    /// The graph whose memory pool the others share.
    pool_owner: Option<Key>,
    pub replays: usize,
}

fn key(micro: &[MicroBatch]) -> Key {
    micro.iter().flat_map(|(_, ts)| ts.iter().map(|t| (t.size(), t.kind()))).collect()
}

impl StepGraphs {
    pub fn new(device: Device, stepper: &Stepper) -> Result<Self> {
        if !matches!(device, Device::Cuda(_)) {
            return Err(Error::Invalid(format!("--cuda-graphs needs a CUDA device, not {device:?}")));
        }
        if !stepper.capturable() {
            return Err(Error::Invalid("--cuda-graphs needs --optim adamw_torch_fused (the CUDA default): the other updates decide on the host".into()));
        }
        Ok(StepGraphs { stream: SideStream::new(device)?, graphs: HashMap::new(), warm: Default::default(), pool_owner: None, replays: 0 })
    }

    /// Graphs captured so far.
    pub fn len(&self) -> usize {
        self.graphs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.graphs.is_empty()
    }

    /// Runs one step at learning rate `lr` (the loop's `Stepper::step`, captured or replayed).
    pub fn step(&mut self, stepper: &mut Stepper, micro: &[MicroBatch], lr: f64, step: usize, loss: &mut LossFn) -> Result<StepResult> {
        stepper.set_lr(lr);
        let k = key(micro);
        if let Some(c) = self.graphs.get(&k) {
            tch::no_grad(|| {
                for (dst, src) in c.inputs.iter().flat_map(|(_, ts)| ts).zip(micro.iter().flat_map(|(_, ts)| ts)) {
                    dst.shallow_clone().copy_(src);
                }
            });
            self.stream.run(|| c.graph.replay())?;
            self.replays += 1;
            return Ok(c.result.shallow_clone());
        }
        if self.graphs.len() >= MAX_GRAPHS {
            return stepper.step(micro, step, loss);
        }
        if self.warm.insert(k.clone()) {
            return self.stream.run(|| stepper.step(micro, step, loss));
        }
        // Static copies made outside the capture, so they outlive it and the next batch of this
        // shape can be copied in.
        let inputs: Vec<MicroBatch> = micro.iter().map(|(w, ts)| (*w, ts.iter().map(Tensor::copy).collect())).collect();
        let share = self.pool_owner.as_ref().and_then(|o| self.graphs.get(o)).map(|c| &c.graph);
        let (graph, result) = self
            .stream
            .run(|| CudaGraph::capture(share, || stepper.step(&inputs, step, loss)))
            .map_err(|e| Error::Invalid(format!("capturing step {step} in a CUDA graph failed ({e}); run without --cuda-graphs")))?;
        self.stream.run(|| graph.replay())?;
        self.replays += 1;
        tracing::debug!("captured a CUDA graph for step shapes {k:?}");
        self.pool_owner.get_or_insert_with(|| k.clone());
        let out = result.shallow_clone();
        self.graphs.insert(k, Captured { graph, inputs, result });
        Ok(out)
    }
}

/// One training step: replayed from a CUDA graph when `graphs` is on, else eager.
pub fn run_step(graphs: &mut Option<StepGraphs>, stepper: &mut Stepper, micro: &[MicroBatch], lr: f64, step: usize, loss: &mut LossFn) -> Result<StepResult> {
    match graphs {
        Some(g) => g.step(stepper, micro, lr, step, loss),
        None => {
            stepper.set_lr(lr);
            stepper.step(micro, step, loss)
        }
    }
}
