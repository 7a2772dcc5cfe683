//! Statistics for reporting fine-tuning results the way papers do: mean ± sample standard deviation
//! over seeds, arithmetic and geometric means of per-task scores, and a seeded paired bootstrap
//! that tells a real difference between two runs from noise.
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// Summary of one metric over runs (seeds).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); 0 for a single run.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    Some(Summary {
        n,
        mean,
        std,
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        values: values.to_vec(),
    })
}

pub fn arithmetic_mean(scores: &[f64]) -> Option<f64> {
    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64)
}

/// Geometric mean of scores on a ratio scale (percentages). A score of exactly 0 makes the mean 0
/// (its limit); a negative score (Matthews correlation can be) leaves it undefined: `Err` carries
/// the index of the first negative score, so a report can say which task broke it rather than
/// silently clipping or shifting it.
pub fn geometric_mean(scores: &[f64]) -> Result<f64, usize> {
    if let Some(i) = scores.iter().position(|&s| s < 0.0 || s.is_nan()) {
        return Err(i);
    }
    if scores.is_empty() {
        return Ok(f64::NAN);
    }
    if scores.contains(&0.0) {
        return Ok(0.0);
    }
    Ok((scores.iter().map(|s| s.ln()).sum::<f64>() / scores.len() as f64).exp())
}

/// Result of a paired bootstrap of `metric(B) − metric(A)` over the same evaluation examples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bootstrap {
    pub observed: f64,
    pub resamples: usize,
    pub seed: u64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Fraction of resamples where B did not beat A (a one-sided bootstrap p-value for "B > A").
    pub p_b_not_better: f64,
}

/// Paired bootstrap: resample example indices with replacement (the same indices for both
/// systems), recompute `diff(indices)` each time, and take the 2.5th and 97.5th percentiles
/// (linear interpolation, as numpy's default). Deterministic for a given seed.
pub fn paired_bootstrap(n: usize, resamples: usize, seed: u64, diff: impl Fn(&[usize]) -> f64) -> Bootstrap {
    let all: Vec<usize> = (0..n).collect();
    let observed = diff(&all);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut idx = vec![0usize; n];
    let mut diffs: Vec<f64> = (0..resamples)
        .map(|_| {
            idx.iter_mut().for_each(|i| *i = rng.gen_range(0..n));
            diff(&idx)
        })
        .collect();
    diffs.sort_by(|a, b| a.total_cmp(b));
    let not_better = diffs.iter().filter(|&&d| d <= 0.0).count() as f64 / resamples.max(1) as f64;
    Bootstrap {
        observed,
        resamples,
        seed,
        ci_low: percentile(&diffs, 2.5),
        ci_high: percentile(&diffs, 97.5),
        p_b_not_better: not_better,
    }
}

/// Percentile of sorted values with linear interpolation between closest ranks.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}
