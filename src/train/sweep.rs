//! Multi-seed sweeps: one run per seed in `<output-dir>/seed-<n>/`, run one after another.
//! A seed whose `eval_results.json` exists is finished and skipped; an unfinished one resumes from
//! its newest complete checkpoint, so re-running a killed sweep only does the remaining work. The
//! sweep ends with `seeds_summary.json`: mean, sample std, min and max of every metric.
use crate::error::Result;
use crate::eval::stats;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

pub fn seed_dir(output_dir: &Path, seed: u64) -> PathBuf {
    output_dir.join(format!("seed-{seed}"))
}

/// Runs `run_one(seed, dir)` for every unfinished seed and summarises all of them.
pub fn sweep(output_dir: &Path, seeds: &[u64], mut run_one: impl FnMut(u64, &Path) -> Result<()>) -> Result<Value> {
    let mut results: Vec<(u64, Map<String, Value>)> = Vec::new();
    for &seed in seeds {
        let dir = seed_dir(output_dir, seed);
        let done = dir.join("eval_results.json");
        // Under data parallelism rank 0's directory decides (the other ranks write to scratch).
        let main = crate::train::ddp::is_main();
        if crate::train::ddp::any(main && done.is_file())? {
            eprintln!("seed {seed}: finished earlier ({}), skipped", dir.display());
        } else {
            eprintln!("seed {seed}: running in {}", dir.display());
            run_one(seed, &dir)?;
        }
        if !main {
            continue;
        }
        let v: Value = serde_json::from_slice(&crate::io::read(&done)?).map_err(|e| crate::Error::Json { path: done.clone(), source: e })?;
        results.push((seed, v.as_object().cloned().unwrap_or_default()));
    }
    let summary = summarize(&results);
    crate::io::write_json(&output_dir.join("seeds_summary.json"), &summary)?;
    Ok(summary)
}

/// Per numeric metric: its summary over the seeds that report it.
pub fn summarize(results: &[(u64, Map<String, Value>)]) -> Value {
    let mut keys: Vec<&String> = results.iter().flat_map(|(_, m)| m.keys()).collect();
    keys.sort();
    keys.dedup();
    let metrics: Map<String, Value> = keys
        .into_iter()
        .filter_map(|k| {
            let v: Vec<f64> = results.iter().filter_map(|(_, m)| m.get(k).and_then(Value::as_f64)).collect();
            stats::summarize(&v).map(|s| (k.clone(), json!(s)))
        })
        .collect();
    json!({ "seeds": results.iter().map(|(s, _)| s).collect::<Vec<_>>(), "metrics": metrics })
}
