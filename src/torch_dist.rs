//! Safe wrappers over `csrc/dist.cpp`: PyTorch's distributed engine (c10d), which tch 0.24 does
//! not expose — a process group over a TCPStore rendezvous (Gloo for CPU tensors), its
//! collectives, and DDP's `Reducer`, which averages gradients across ranks bucket by bucket while
//! backward runs.
use crate::error::Result;
use crate::torch_ext::{check, raw, take, Raw};
use std::ffi::{c_char, c_int, c_void, CString};
use std::time::Duration;
use tch::Tensor;

extern "C" {
    fn ft_dist_init(host: *const c_char, port: c_int, rank: c_int, world_size: c_int, agent_store: bool, prefix: *const c_char, timeout_ms: i64, out: *mut *mut c_void) -> *mut c_char;
    fn ft_dist_free(g: *mut c_void);
    fn ft_dist_broadcast(g: *mut c_void, ts: *const Raw, n: usize, root: c_int) -> *mut c_char;
    fn ft_dist_allreduce_sum(g: *mut c_void, ts: *const Raw, n: usize) -> *mut c_char;
    fn ft_dist_allgather(g: *mut c_void, t: Raw, out: *mut Raw) -> *mut c_char;
    fn ft_dist_barrier(g: *mut c_void) -> *mut c_char;
    fn ft_reducer_new(g: *mut c_void, ps: *const Raw, n: usize, first_bucket_bytes: i64, bucket_bytes: i64, find_unused: bool, out: *mut *mut c_void) -> *mut c_char;
    fn ft_reducer_free(r: *mut c_void);
    fn ft_reducer_prepare_forward(r: *mut c_void) -> *mut c_char;
    fn ft_reducer_prepare_backward(r: *mut c_void, loss: Raw) -> *mut c_char;
    fn ft_reducer_rebuild_buckets(r: *mut c_void, rebuilt: *mut bool) -> *mut c_char;
}

/// Where and how a rank joins its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendezvous {
    pub host: String,
    pub port: u16,
    pub rank: usize,
    pub world_size: usize,
    /// The store is hosted by a launcher's agent (torchrun's `TORCHELASTIC_USE_AGENT_STORE`),
    /// not by rank 0.
    pub agent_store: bool,
    /// torchrun's restart attempt (`TORCHELASTIC_RESTART_COUNT`): with an agent's store, each
    /// attempt's keys live apart.
    pub attempt: u64,
    pub timeout: Duration,
}

/// This rank's membership of the default process group.
pub struct ProcessGroup {
    ptr: *mut c_void,
    pub rank: usize,
    pub world_size: usize,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProcessGroup(rank {} of {})", self.rank, self.world_size)
    }
}

impl ProcessGroup {
    /// Joins: returns once every rank has connected, or fails after the timeout.
    pub fn join(r: &Rendezvous) -> Result<ProcessGroup> {
        let host = CString::new(r.host.as_str()).map_err(|_| crate::error::Error::Invalid(format!("MASTER_ADDR {:?} holds a NUL byte", r.host)))?;
        // torch.distributed's prefixes: `/worker/attempt_<n>` under an agent, then `default_pg`.
        let prefix = match r.agent_store {
            true => format!("/worker/attempt_{}/default_pg", r.attempt),
            false => "default_pg".to_string(),
        };
        let prefix = CString::new(prefix).expect("no NUL in the prefix");
        let mut ptr = std::ptr::null_mut();
        check(unsafe { ft_dist_init(host.as_ptr(), r.port as c_int, r.rank as c_int, r.world_size as c_int, r.agent_store, prefix.as_ptr(), r.timeout.as_millis() as i64, &mut ptr) })?;
        Ok(ProcessGroup { ptr, rank: r.rank, world_size: r.world_size })
    }

    /// `root`'s tensors, copied into every rank's (same shapes on each).
    pub fn broadcast(&self, ts: &[&Tensor], root: usize) -> Result<()> {
        let r = raw(ts);
        check(unsafe { ft_dist_broadcast(self.ptr, r.as_ptr(), r.len(), root as c_int) })
    }

    /// Sums the tensors in place across ranks.
    pub fn all_reduce_sum(&self, ts: &[&Tensor]) -> Result<()> {
        let r = raw(ts);
        check(unsafe { ft_dist_allreduce_sum(self.ptr, r.as_ptr(), r.len()) })
    }

    /// Every rank's `t` (the same shape on each), stacked in rank order: `[world_size, ...]`.
    pub fn all_gather(&self, t: &Tensor) -> Result<Tensor> {
        let mut out: Raw = std::ptr::null_mut();
        check(unsafe { ft_dist_allgather(self.ptr, t.as_ptr() as Raw, &mut out) })?;
        Ok(take(out))
    }

    pub fn barrier(&self) -> Result<()> {
        check(unsafe { ft_dist_barrier(self.ptr) })
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        unsafe { ft_dist_free(self.ptr) }
    }
}

/// DDP's gradient reducer over a model's parameters.
pub struct Reducer {
    ptr: *mut c_void,
    rebuilt: bool,
}

impl Reducer {
    /// Buckets as `DistributedDataParallel` makes them (a 1 MiB first bucket, then 25 MiB), with
    /// its `find_unused_parameters`, which Trainer turns on for transformers' models (a head may
    /// leave a part of its encoder unused, as token classification leaves BERT's pooler).
    pub fn new(group: &ProcessGroup, params: &[&Tensor], find_unused: bool) -> Result<Reducer> {
        let r = raw(params);
        let mut ptr = std::ptr::null_mut();
        check(unsafe { ft_reducer_new(group.ptr, r.as_ptr(), r.len(), 1 << 20, 25 << 20, find_unused, &mut ptr) })?;
        Ok(Reducer { ptr, rebuilt: false })
    }

    /// Before a forward pass whose backward syncs.
    pub fn prepare_forward(&mut self) -> Result<()> {
        if !self.rebuilt {
            let mut rebuilt = false;
            check(unsafe { ft_reducer_rebuild_buckets(self.ptr, &mut rebuilt) })?;
            self.rebuilt = rebuilt;
        }
        check(unsafe { ft_reducer_prepare_forward(self.ptr) })
    }

    /// Before backward of `loss`: its gradients come out averaged over the ranks.
    pub fn prepare_backward(&mut self, loss: &Tensor) -> Result<()> {
        check(unsafe { ft_reducer_prepare_backward(self.ptr, loss.as_ptr() as Raw) })
    }
}

impl Drop for Reducer {
    fn drop(&mut self) {
        unsafe { ft_reducer_free(self.ptr) }
    }
}
