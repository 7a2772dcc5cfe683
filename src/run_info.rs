//! What every run records about itself so it can be reproduced: versions, git revision, hardware.
use serde_json::{json, Value};

/// Puts oneMKL, which libtorch's CPU matmuls call, in its conditional-numerical-reproducibility
/// mode unless the user chose a mode. Without it MKL may pick its code path and thread split per
/// call (notably on AMD CPUs), so a run resumed from a checkpoint, whose heap is laid out
/// differently, drifts from the uninterrupted run in the last bits. On the Intel machines measured
/// (docs/development.md) the mode changes no result byte. Must run before the first tensor
/// operation, while the process has one thread: MKL reads the variables once, at its first call.
pub fn pin_reproducible_math() {
    for (var, value) in [("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
}

pub fn environment(device: tch::Device) -> Value {
    json!({
        "finetune_version": env!("CARGO_PKG_VERSION"),
        "git_revision": env!("FINETUNE_GIT_REVISION"),
        "libtorch_version": option_env!("FINETUNE_LIBTORCH_VERSION").unwrap_or("unknown"),
        "tch_version": "0.24.0",
        "device": format!("{device:?}"),
        "cuda_device_count": tch::Cuda::device_count(),
        "cpu": cpu_model(),
        "num_cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "torch_num_threads": tch::get_num_threads(),
        "mkl_cbwr": std::env::var("MKL_CBWR").ok(),
        "memory_total_kib": meminfo_total_kib(),
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
    })
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string())
}

fn meminfo_total_kib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Peak resident set size of this process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Serialises a device as `Cpu` / `Cuda(0)`, for run configs.
pub fn serialize_device<S: serde::Serializer>(d: &tch::Device, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{d:?}"))
}
