//! The process-wide default process group of a data-parallel job (as torch.distributed's default
//! group): joined once from the launcher's environment (`train::launch`), read by the trainer.
use crate::error::{Error, Result};
use crate::torch_dist::ProcessGroup;
use crate::train::launch::World;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tch::Tensor;

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
/// their own ([`scratch_root`], removed when the command ends), since every rank computes the same
/// results and only rank 0 writes them. Checkpoints are rank 0's too (with every rank's generator
/// states in them), and every rank resumes from rank 0's.
pub fn output_dir(out: PathBuf) -> PathBuf {
    match group() {
        Some(g) if g.rank != 0 => scratch_root().join(out.file_name().unwrap_or(out.as_os_str())),
        _ => out,
    }
}

/// This process's scratch directory as a rank other than 0.
pub fn scratch_root() -> PathBuf {
    std::env::temp_dir().join(format!("finetune-rank{}-{}", rank(), std::process::id()))
}

/// Whether any rank passes `true` (every rank calls this at the same point).
pub fn any(flag: bool) -> Result<bool> {
    let Some(g) = group() else { return Ok(flag) };
    let t = Tensor::from_slice(&[flag as i64]);
    g.all_reduce_sum(&[&t]).map_err(|e| collective("agreeing on a stop", e))?;
    Ok(t.int64_value(&[0]) > 0)
}

/// Rank 0's `path` on every rank (every rank calls this at the same point; the others' argument
/// is ignored). A path a rank can read only where ranks share a filesystem, as for Trainer.
pub fn broadcast_path(path: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(g) = group() else { return Ok(path.map(Path::to_path_buf)) };
    // Linux's PATH_MAX, plus a byte that says whether there is a path.
    let mut buf = vec![0u8; 4097];
    if let Some(p) = path.filter(|_| g.rank == 0) {
        let b = p.as_os_str().as_bytes();
        let n = b.len().min(4096);
        buf[0] = 1;
        buf[1..=n].copy_from_slice(&b[..n]);
    }
    let t = Tensor::from_slice(&buf);
    g.broadcast(&[&t], 0).map_err(|e| collective("sharing a checkpoint path", e))?;
    let got = Vec::<u8>::try_from(&t)?;
    if got[0] == 0 {
        return Ok(None);
    }
    let end = got[1..].iter().position(|&b| b == 0).map_or(got.len(), |i| i + 1);
    Ok(Some(PathBuf::from(std::ffi::OsStr::from_bytes(&got[1..end]))))
}

/// Every rank's named tensors (the same names and shapes on each), in rank order.
pub fn gather(named: &[(&str, Tensor)]) -> Result<Vec<Vec<(String, Tensor)>>> {
    let Some(g) = group() else { return Ok(vec![named.iter().map(|(n, t)| (n.to_string(), t.shallow_clone())).collect()]) };
    let mut per_rank: Vec<Vec<(String, Tensor)>> = (0..g.world_size).map(|_| Vec::new()).collect();
    for (name, t) in named {
        let all = g.all_gather(&t.contiguous()).map_err(|e| collective("gathering generator states", e))?;
        for (r, v) in per_rank.iter_mut().enumerate() {
            v.push((name.to_string(), all.get(r as i64)));
        }
    }
    Ok(per_rank)
}

/// Rows `0..n` of a computation split across the ranks (every rank calls this at the same point):
/// each computes `rows(range)` for its own contiguous share (sizes within one of each other), and
/// the shares are gathered in order — evaluation without a duplicate or a missing example. One
/// process, or fewer rows than ranks: `rows(0..n)`.
pub fn shard_rows(n: usize, rows: impl FnOnce(std::ops::Range<usize>) -> Tensor) -> Result<Tensor> {
    let Some(g) = group().filter(|g| n >= g.world_size) else { return Ok(rows(0..n)) };
    let w = g.world_size;
    let share = |r: usize| r * n / w..(r + 1) * n / w;
    let mine = rows(share(g.rank));
    let width = n.div_ceil(w) as i64;
    let mut shape = mine.size();
    let filled = shape[0];
    shape[0] = width;
    let padded = Tensor::zeros(&shape, (mine.kind(), mine.device()));
    padded.narrow(0, 0, filled).copy_(&mine);
    let all = g.all_gather(&padded).map_err(|e| collective("gathering evaluation outputs", e))?;
    let parts: Vec<Tensor> = (0..w).map(|r| all.get(r as i64).narrow(0, 0, share(r).len() as i64)).collect();
    Ok(Tensor::cat(&parts, 0))
}

/// A failed collective, said as what this rank was doing: the usual cause is another rank that
/// stopped (its launcher names it).
pub fn collective(doing: &str, e: Error) -> Error {
    Error::Invalid(format!("data-parallel rank {} of {}: {doing} failed; another rank has probably stopped (see its launcher's message): {e}", rank(), world_size()))
}
