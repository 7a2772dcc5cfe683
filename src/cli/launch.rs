//! Data-parallel start of a training command: join the job a launcher (torchrun, Slurm, a
//! PyTorchJob) described in the environment, or, with `--nproc-per-node N`, be that launcher for
//! one machine (or one node of several) without Python — torchrun's flags and environment, so a
//! command line moves between the two unchanged.
use super::flags::{parse_device, RunCli};
use crate::error::{Error, Result};
use crate::train::launch::World;
use clap::Args;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Data-parallel flags shared by the training commands.
#[derive(Args, Debug, Clone)]
pub struct DistCli {
    /// Start N ranks on this machine (torchrun's flag), each with cores/N intra-op threads unless
    /// OMP_NUM_THREADS is set. Under a launcher (RANK or SLURM_PROCID set) it is ignored.
    #[arg(long)]
    pub nproc_per_node: Option<usize>,
    /// Machines in the job, each started with the same command and its own --node-rank.
    #[arg(long, default_value_t = 1)]
    pub nnodes: usize,
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Host of node 0, where rank 0 serves the rendezvous store.
    #[arg(long, default_value = "127.0.0.1")]
    pub master_addr: String,
    /// Default: 29500 (torchrun's) with several nodes, a free port on one.
    #[arg(long)]
    pub master_port: Option<u16>,
    /// Process group backend: auto (gloo for CPU tensors), gloo or nccl.
    #[arg(long, default_value = "auto")]
    pub ddp_backend: String,
    /// Seconds a rank waits at the rendezvous or in a collective before failing (HF's
    /// ddp_timeout).
    #[arg(long, default_value_t = 1800)]
    pub ddp_timeout: u64,
}

/// Held by a rank while its command runs: removes the rank's scratch directory when dropped.
pub struct ScratchGuard(Option<std::path::PathBuf>);

impl Drop for ScratchGuard {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Joins the job of the environment (or runs alone): `Some` guard to hold while the command runs.
/// Or launches the ranks of `--nproc-per-node` and waits for them: `None`, the command is done.
pub fn start(d: &DistCli, run: &RunCli) -> Result<Option<ScratchGuard>> {
    let timeout = Duration::from_secs(d.ddp_timeout);
    match crate::train::launch::from_env(|k| std::env::var(k).ok(), timeout)? {
        Some(world) => join(d, &world, parse_device(&run.device.device)?).map(Some),
        None => match d.nproc_per_node {
            Some(n) if n * d.nnodes > 1 => launch(d, n).map(|()| None),
            _ => Ok(Some(ScratchGuard(None))),
        },
    }
}

fn join(d: &DistCli, world: &World, device: tch::Device) -> Result<ScratchGuard> {
    match (d.ddp_backend.as_str(), device.is_cuda()) {
        ("auto" | "gloo", false) => {}
        ("nccl", _) | (_, true) => {
            return Err(Error::Invalid(
                "data-parallel training on CUDA (NCCL) is not built yet: this build's process groups are Gloo, for CPU tensors (--device cpu)".into(),
            ))
        }
        (other, _) => return Err(Error::Invalid(format!("--ddp-backend {other:?}: expected auto, gloo or nccl"))),
    }
    crate::train::ddp::init(world)?;
    let scratch = (!crate::train::ddp::is_main()).then(crate::train::ddp::scratch_root);
    tracing::info!("data-parallel rank {} of {} (local {} of {})", world.rendezvous.rank, world.rendezvous.world_size, world.local_rank, world.local_world_size);
    Ok(ScratchGuard(scratch))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::Invalid(format!("no free port for the rendezvous: {e}")))?;
    Ok(l.local_addr().map_err(|e| Error::Invalid(format!("no free port for the rendezvous: {e}")))?.port())
}

/// Starts this node's ranks as child processes of this same command line and waits for all of
/// them; when one fails, the others are stopped and the error names it.
fn launch(d: &DistCli, nproc: usize) -> Result<()> {
    if d.node_rank >= d.nnodes {
        return Err(Error::Invalid(format!("--node-rank {} with --nnodes {}: expected 0..{}", d.node_rank, d.nnodes, d.nnodes)));
    }
    let port = match (d.master_port, d.nnodes) {
        (Some(p), _) => p,
        (None, 1) => free_port()?,
        (None, _) => 29500,
    };
    let world = nproc * d.nnodes;
    let threads = std::env::var("OMP_NUM_THREADS").ok().unwrap_or_else(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (cores / nproc).max(1).to_string()
    });
    let exe = std::env::current_exe().map_err(|e| Error::Invalid(format!("cannot find this program to start its ranks: {e}")))?;
    let mut ranks: Vec<(usize, Child)> = Vec::with_capacity(nproc);
    for local in 0..nproc {
        let rank = d.node_rank * nproc + local;
        let mut c = Command::new(&exe);
        c.args(std::env::args_os().skip(1))
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", world.to_string())
            .env("LOCAL_RANK", local.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("GROUP_RANK", d.node_rank.to_string())
            .env("MASTER_ADDR", &d.master_addr)
            .env("MASTER_PORT", port.to_string())
            .env("OMP_NUM_THREADS", &threads);
        // One copy of the results on stdout, rank 0's, as from a single process.
        if rank != 0 {
            c.stdout(std::process::Stdio::null());
        }
        // Its own process group: a Ctrl-C at the terminal reaches this launcher only, which passes
        // one SIGTERM on (a rank that saw two signals would exit without its checkpoint).
        std::os::unix::process::CommandExt::process_group(&mut c, 0);
        let child = c.spawn().map_err(|e| Error::Invalid(format!("cannot start rank {rank}: {e}")))?;
        ranks.push((rank, child));
    }
    eprintln!("started ranks {}..{} of {world} (rendezvous {}:{port}, {threads} thread(s) each)", d.node_rank * nproc, d.node_rank * nproc + nproc - 1, d.master_addr);
    supervise(ranks)
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on a child this process started and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

fn describe(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(9)) => "was killed (SIGKILL)".into(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("ended ({s})"),
    }
}

/// Waits for every rank. The first failure stops the rest (SIGTERM, then SIGKILL after 30 s) and
/// becomes the error; a signal to this launcher is passed on once.
fn supervise(mut ranks: Vec<(usize, Child)>) -> Result<()> {
    let mut failed: Option<String> = None;
    let mut forwarded = false;
    let mut stopping_since: Option<Instant> = None;
    while !ranks.is_empty() {
        let mut i = 0;
        while i < ranks.len() {
            match ranks[i].1.try_wait().map_err(|e| Error::Invalid(format!("waiting for rank {}: {e}", ranks[i].0)))? {
                Some(status) => {
                    let (rank, child) = ranks.remove(i);
                    if !status.success() && failed.is_none() {
                        failed = Some(format!("rank {rank} (pid {}) {}", child.id(), describe(status)));
                    }
                }
                None => i += 1,
            }
        }
        let stop = failed.is_some() || crate::train::interrupt::requested();
        if stop && !forwarded {
            if let Some(f) = &failed {
                eprintln!("{f}; stopping the other ranks");
            }
            ranks.iter().for_each(|(_, c)| signal(c, libc::SIGTERM));
            forwarded = true;
            stopping_since = Some(Instant::now());
        }
        if stopping_since.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) {
            ranks.iter().for_each(|(_, c)| signal(c, libc::SIGKILL));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match failed {
        Some(f) => Err(Error::Invalid(format!("data-parallel job failed: {f}"))),
        None => Ok(()),
    }
}
