//! The process-wide default process group of a data-parallel job (as torch.distributed's default
//! group): joined once from the launcher's environment (`train::launch`), read by the trainer.
use crate::error::{Error, Result};
use crate::torch_dist::ProcessGroup;
use crate::train::launch::World;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A `ProcessGroup` shared by the threads of this process.
struct Shared(ProcessGroup);

// SAFETY: c10d's ProcessGroup is used from any thread by torch.distributed; every call through it
// is a collective that Gloo serialises on its own.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

static GROUP: OnceLock<Shared> = OnceLock::new();

/// Joins the job `world` describes (blocks until every rank has joined or the timeout passes).
pub fn init(world: &World) -> Result<()> {
    let group = ProcessGroup::join(&world.rendezvous)?;
    GROUP.set(Shared(group)).map_err(|_| Error::Invalid("this process already joined a data-parallel job".into()))
}

/// The job's process group, when this process is one of several ranks.
pub fn group() -> Option<&'static ProcessGroup> {
    GROUP.get().map(|s| &s.0)
}

pub fn world_size() -> usize {
    group().map_or(1, |g| g.world_size)
}

pub fn rank() -> usize {
    group().map_or(0, |g| g.rank)
}

/// Whether this process writes the run's outputs (rank 0, or the only process).
pub fn is_main() -> bool {
    rank() == 0
}

/// Where this rank writes a run's outputs: `out` on rank 0; on the others a scratch directory of
/// their own, since every rank computes the same results and only one may write them.
pub fn output_dir(out: PathBuf) -> PathBuf {
    match group() {
        Some(g) if g.rank != 0 => std::env::temp_dir().join(format!("finetune-rank{}-{}", g.rank, std::process::id())),
        _ => out,
    }
}
