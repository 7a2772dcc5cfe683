//! GLUE's official metrics, defined as sklearn/scipy define them: accuracy, binary F1 (positive
//! class 1), Matthews correlation, Pearson r and Spearman ρ (average ranks for ties). Degenerate
//! inputs follow the reference libraries: MCC and F1 are 0 where their denominator vanishes,
//! correlations of a constant series are NaN (written as `null` in JSON).

pub fn accuracy(pred: &[i64], gold: &[i64]) -> f64 {
    assert_eq!(pred.len(), gold.len(), "prediction and label counts differ");
    if pred.is_empty() {
        return f64::NAN;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / pred.len() as f64
}

/// Confusion counts (tp, fp, fn, tn) for positive class 1.
fn confusion(pred: &[i64], gold: &[i64]) -> (f64, f64, f64, f64) {
    assert_eq!(pred.len(), gold.len(), "prediction and label counts differ");
    let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &g) in pred.iter().zip(gold) {
        match (p == 1, g == 1) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
            (false, false) => tn += 1.0,
        }
    }
    (tp, fp, fn_, tn)
}

/// Binary F1 of class 1 (sklearn `f1_score`, `zero_division=0`).
pub fn f1(pred: &[i64], gold: &[i64]) -> f64 {
    let (tp, fp, fn_, _) = confusion(pred, gold);
    let denom = 2.0 * tp + fp + fn_;
    if denom == 0.0 { 0.0 } else { 2.0 * tp / denom }
}

/// Matthews correlation coefficient (sklearn's multiclass form, which reduces to the binary one).
pub fn matthews_corrcoef(pred: &[i64], gold: &[i64]) -> f64 {
    assert_eq!(pred.len(), gold.len(), "prediction and label counts differ");
    let k = pred.iter().chain(gold).copied().max().map_or(0, |m| m as usize + 1);
    let mut c = vec![vec![0f64; k]; k];
    for (&p, &g) in pred.iter().zip(gold) {
        c[g as usize][p as usize] += 1.0;
    }
    let t: Vec<f64> = (0..k).map(|i| c[i].iter().sum()).collect(); // true counts
    let p: Vec<f64> = (0..k).map(|j| (0..k).map(|i| c[i][j]).sum()).collect(); // predicted counts
    let n = pred.len() as f64;
    let correct: f64 = (0..k).map(|i| c[i][i]).sum();
    let cov_ytyp = correct * n - t.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>();
    let cov_ypyp = n * n - p.iter().map(|x| x * x).sum::<f64>();
    let cov_ytyt = n * n - t.iter().map(|x| x * x).sum::<f64>();
    if cov_ypyp * cov_ytyt == 0.0 {
        return 0.0;
    }
    cov_ytyp / (cov_ytyt * cov_ypyp).sqrt()
}

pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "prediction and label counts differ");
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
}

/// 1-based ranks, ties sharing their average rank (scipy `rankdata(method="average")`).
pub fn rank_average(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&rank_average(x), &rank_average(y))
}
