//! Which rank of which job this process is, from the environment the launchers already speak:
//! torchrun's (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`, `TORCHELASTIC_USE_AGENT_STORE`), which Kubernetes' PyTorchJob sets too, or
//! Slurm's (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`, with
//! `MASTER_ADDR` / `MASTER_PORT` exported by the batch script). No such variables: one process.
use crate::error::{Error, Result};
use crate::torch_dist::Rendezvous;
use std::time::Duration;

/// This process's place in a data-parallel job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub rendezvous: Rendezvous,
    /// The rank among this node's processes: its device is `cuda:local_rank`.
    pub local_rank: usize,
    pub local_world_size: usize,
}

fn number(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<Option<usize>> {
    get(var).map(|v| v.trim().parse::<usize>().map_err(|_| Error::Invalid(format!("{var}={v:?}: expected a non-negative integer")))).transpose()
}

fn required(get: &impl Fn(&str) -> Option<String>, var: &str, launcher: &str) -> Result<usize> {
    number(get, var)?.ok_or_else(|| Error::Invalid(format!("{launcher} environment without {var}")))
}

/// Slurm's per-node task count: `2`, or `2(x3)`, or `2(x3),1` (the first node's is this one's
/// when every node runs as many; otherwise the local rank still comes from `SLURM_LOCALID`).
fn slurm_tasks_per_node(v: &str) -> Option<usize> {
    v.split(',').next()?.split('(').next()?.trim().parse().ok()
}

/// torchrun's restart attempt (`TORCHELASTIC_RESTART_COUNT`), 0 for a first start.
fn attempt(get: &impl Fn(&str) -> Option<String>) -> u64 {
    get("TORCHELASTIC_RESTART_COUNT").and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

/// Whether torchrun restarted this job (`--max-restarts`): it then goes on from its newest
/// complete checkpoint.
pub fn restarted() -> bool {
    attempt(&|k| std::env::var(k).ok()) > 0
}

/// The job this process belongs to, or `None` when no launcher set the environment; `get` reads a
/// variable (`std::env::var` in the binary, a table in tests). `timeout` bounds the rendezvous
/// and every collective.
pub fn from_env(get: impl Fn(&str) -> Option<String>, timeout: Duration) -> Result<Option<World>> {
    let (launcher, rank, world_size, local_rank, local_world_size) = if get("RANK").is_some() {
        let launcher = "torchrun";
        let world = required(&get, "WORLD_SIZE", launcher)?;
        let local_world = number(&get, "LOCAL_WORLD_SIZE")?.unwrap_or(world);
        (launcher, required(&get, "RANK", launcher)?, world, number(&get, "LOCAL_RANK")?.unwrap_or(0), local_world)
    } else if get("SLURM_PROCID").is_some() {
        let launcher = "Slurm";
        let world = required(&get, "SLURM_NTASKS", launcher)?;
        // A one-task allocation (sbatch or salloc running finetune itself) is one process.
        if world == 1 {
            return Ok(None);
        }
        let local_world = get("SLURM_NTASKS_PER_NODE").and_then(|v| slurm_tasks_per_node(&v)).unwrap_or(1);
        (launcher, required(&get, "SLURM_PROCID", launcher)?, world, required(&get, "SLURM_LOCALID", launcher)?, local_world)
    } else {
        return Ok(None);
    };
    if world_size == 0 || rank >= world_size || local_rank >= local_world_size.max(1) {
        return Err(Error::Invalid(format!("{launcher} environment: rank {rank} (local {local_rank}) does not fit a world of {world_size} ({local_world_size} on this node)")));
    }
    let host = get("MASTER_ADDR").filter(|h| !h.is_empty()).ok_or_else(|| Error::Invalid(format!("{launcher} environment without MASTER_ADDR: set it (and MASTER_PORT) to rank 0's host")))?;
    let port = get("MASTER_PORT").ok_or_else(|| Error::Invalid(format!("{launcher} environment without MASTER_PORT")))?;
    let port = port.trim().parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| Error::Invalid(format!("MASTER_PORT={port:?}: expected a port number")))?;
    let agent_store = get("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    Ok(Some(World { rendezvous: Rendezvous { host, port, rank, world_size, agent_store, attempt: attempt(&get), timeout }, local_rank, local_world_size }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    const T: Duration = Duration::from_secs(1800);

    #[test]
    fn torchrun_slurm_and_no_launcher() {
        assert_eq!(from_env(env(&[("PATH", "/bin")]), T).unwrap(), None);
        let w = from_env(env(&[("RANK", "3"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1"), ("LOCAL_WORLD_SIZE", "2"), ("MASTER_ADDR", "node0"), ("MASTER_PORT", "29500"), ("TORCHELASTIC_USE_AGENT_STORE", "True")]), T).unwrap().unwrap();
        assert_eq!((w.rendezvous.rank, w.rendezvous.world_size, w.local_rank, w.local_world_size), (3, 4, 1, 2));
        assert_eq!((w.rendezvous.host.as_str(), w.rendezvous.port, w.rendezvous.agent_store, w.rendezvous.timeout), ("node0", 29500, true, T));
        let s = from_env(env(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "8"), ("SLURM_LOCALID", "1"), ("SLURM_NTASKS_PER_NODE", "2(x4)"), ("MASTER_ADDR", "n1"), ("MASTER_PORT", "12345")]), T).unwrap().unwrap();
        assert_eq!((s.rendezvous.rank, s.rendezvous.world_size, s.local_rank, s.local_world_size, s.rendezvous.agent_store), (5, 8, 1, 2, false));
        // One Slurm task, without MASTER_ADDR: a plain single-process run.
        assert_eq!(from_env(env(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "1"), ("SLURM_LOCALID", "0")]), T).unwrap(), None);
    }

    #[test]
    fn a_broken_environment_is_named() {
        let err = |vars: &[(&str, &str)]| from_env(env(vars), T).unwrap_err().to_string();
        assert!(err(&[("RANK", "0")]).contains("without WORLD_SIZE"));
        assert!(err(&[("RANK", "x"), ("WORLD_SIZE", "2")]).contains("RANK=\"x\""));
        assert!(err(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "1")]).contains("does not fit a world of 2"));
        assert!(err(&[("RANK", "0"), ("WORLD_SIZE", "2")]).contains("without MASTER_ADDR"));
        assert!(err(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "a"), ("MASTER_PORT", "70000")]).contains("MASTER_PORT=\"70000\""));
        assert!(err(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]).contains("without SLURM_LOCALID"));
    }
}
