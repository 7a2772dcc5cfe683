//! Metrics of `finetune classify`, defined as scikit-learn defines them: accuracy, per-class
//! precision / recall / F1 / support (`precision_recall_fscore_support`, `zero_division=0`),
//! their macro, weighted and micro averages, `classification_report`'s text layout, and the
//! confusion matrix; multi-label scores from thresholded sigmoids; MSE, Pearson and Spearman for
//! regression. Averages sum as numpy does (pairwise), so figures equal sklearn's to the last bit.
use crate::data::batch::Labels;
use crate::data::classify::ProblemType;
use crate::eval::glue::Scores;
use crate::eval::metrics;
use serde_json::{json, Map, Value};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// From counts, as sklearn computes them: F1 = 2·tp / (true + predicted).
fn prf(tp: usize, predicted: usize, actual: usize) -> Prf {
    let div = |a: f64, b: usize| if b == 0 { 0.0 } else { a / b as f64 };
    Prf { precision: div(tp as f64, predicted), recall: div(tp as f64, actual), f1: div(2.0 * tp as f64, predicted + actual), support: actual }
}

/// numpy's sum of a float64 array (`np.add.reduce`): pairwise, eight accumulators per block of
/// up to 128 values. Means of per-class scores go through it so they round as sklearn's do.
pub fn np_sum(a: &[f64]) -> f64 {
    fn pairwise(a: &[f64]) -> f64 {
        let n = a.len();
        if n < 8 {
            a.iter().fold(0.0, |s, &x| s + x)
        } else if n <= 128 {
            let mut r = [0.0; 8];
            r.copy_from_slice(&a[..8]);
            let full = n - n % 8;
            for chunk in a[8..full].chunks_exact(8) {
                for (acc, &x) in r.iter_mut().zip(chunk) {
                    *acc += x;
                }
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for &x in &a[full..] {
                res += x;
            }
            res
        } else {
            let mut n2 = n / 2;
            n2 -= n2 % 8;
            pairwise(&a[..n2]) + pairwise(&a[n2..])
        }
    }
    0.0 + pairwise(a)
}

fn np_mean(a: &[f64]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    np_sum(a) / a.len() as f64
}

/// `np.average(values, weights=support)`.
fn np_weighted(values: &[f64], support: &[usize]) -> f64 {
    let w: Vec<f64> = support.iter().map(|&s| s as f64).collect();
    let total = np_sum(&w);
    if total == 0.0 {
        return 0.0;
    }
    np_sum(&values.iter().zip(&w).map(|(v, w)| v * w).collect::<Vec<_>>()) / total
}

/// Index of the first largest logit (torch's and numpy's argmax).
pub fn argmax(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

/// A label's probability from its logit (multi-label), in f64.
pub fn sigmoid(logit: f32) -> f64 {
    1.0 / (1.0 + (-(logit as f64)).exp())
}

/// Rows: true class, columns: predicted class.
pub fn confusion_matrix(pred: &[i64], gold: &[i64], k: usize) -> Vec<Vec<usize>> {
    let mut cm = vec![vec![0; k]; k];
    for (&p, &g) in pred.iter().zip(gold) {
        cm[g as usize][p as usize] += 1;
    }
    cm
}

/// The confusion matrix as an aligned text table.
pub fn confusion_text(labels: &[String], cm: &[Vec<usize>]) -> String {
    let w = labels.iter().map(|l| l.len()).max().unwrap_or(4).max(6);
    let mut s = format!("{:>w$} | predicted →\n{:>w$} |", "true ↓", "");
    for l in labels {
        s += &format!(" {l:>w$}");
    }
    s += "\n";
    for (l, row) in labels.iter().zip(cm) {
        s += &format!("{l:>w$} |");
        for n in row {
            s += &format!(" {n:>w$}");
        }
        s += "\n";
    }
    s
}

/// Per-class scores of single-label predictions, for every class of the label list.
pub fn per_class(cm: &[Vec<usize>]) -> Vec<Prf> {
    (0..cm.len()).map(|c| prf(cm[c][c], cm.iter().map(|row| row[c]).sum(), cm[c].iter().sum())).collect()
}

/// Single-label scores: accuracy, then macro and weighted precision / recall / F1. As sklearn
/// without `labels=`, the averages run over the classes that occur in the gold labels or the
/// predictions.
pub fn single_label_scores(pred: &[i64], gold: &[i64], k: usize) -> (Scores, Vec<Prf>, Vec<Vec<usize>>) {
    let cm = confusion_matrix(pred, gold, k);
    let classes = per_class(&cm);
    let present: Vec<usize> = (0..k).filter(|&c| cm[c].iter().sum::<usize>() > 0 || cm.iter().any(|row| row[c] > 0)).collect();
    let pick = |f: fn(&Prf) -> f64| present.iter().map(|&c| f(&classes[c])).collect::<Vec<f64>>();
    let support: Vec<usize> = present.iter().map(|&c| classes[c].support).collect();
    let mut s: Scores = vec![("accuracy".into(), metrics::accuracy(pred, gold))];
    for (name, f) in [("precision", (|p: &Prf| p.precision) as fn(&Prf) -> f64), ("recall", |p: &Prf| p.recall), ("f1", |p: &Prf| p.f1)] {
        s.push((format!("{name}_macro"), np_mean(&pick(f))));
        s.push((format!("{name}_weighted"), np_weighted(&pick(f), &support)));
    }
    (s, classes, cm)
}

/// Multi-label scores at a threshold on the sigmoid: micro and macro precision / recall / F1
/// (sklearn on indicator matrices: every label counts in the macro average), subset accuracy, and
/// each label's scores. `prob` and `gold` are rows of `k` values.
pub fn multi_label_scores(prob: &[f64], gold: &[f32], k: usize, threshold: f64) -> (Scores, Vec<Prf>) {
    let n = gold.len() / k.max(1);
    let (mut tp, mut pred, mut act) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    let mut exact = 0usize;
    for r in 0..n {
        let mut all = true;
        for c in 0..k {
            let (p, g) = (prob[r * k + c] > threshold, gold[r * k + c] > 0.5);
            tp[c] += (p && g) as usize;
            pred[c] += p as usize;
            act[c] += g as usize;
            all &= p == g;
        }
        exact += all as usize;
    }
    let labels: Vec<Prf> = (0..k).map(|c| prf(tp[c], pred[c], act[c])).collect();
    let micro = prf(tp.iter().sum(), pred.iter().sum(), act.iter().sum());
    let col = |f: fn(&Prf) -> f64| labels.iter().map(f).collect::<Vec<f64>>();
    let s: Scores = vec![
        ("f1_micro".into(), micro.f1),
        ("f1_macro".into(), np_mean(&col(|p| p.f1))),
        ("precision_micro".into(), micro.precision),
        ("recall_micro".into(), micro.recall),
        ("precision_macro".into(), np_mean(&col(|p| p.precision))),
        ("recall_macro".into(), np_mean(&col(|p| p.recall))),
        ("subset_accuracy".into(), if n == 0 { f64::NAN } else { exact as f64 / n as f64 }),
        ("precision_weighted".into(), np_weighted(&col(|p| p.precision), &act)),
        ("recall_weighted".into(), np_weighted(&col(|p| p.recall), &act)),
        ("f1_weighted".into(), np_weighted(&col(|p| p.f1), &act)),
    ];
    (s, labels)
}

/// Regression scores: MSE (as sklearn's `mean_squared_error`, a numpy mean), Pearson, Spearman.
pub fn regression_scores(pred: &[f64], gold: &[f64]) -> Scores {
    let sq: Vec<f64> = pred.iter().zip(gold).map(|(p, g)| (p - g) * (p - g)).collect();
    vec![("mse".into(), np_mean(&sq)), ("pearson".into(), metrics::pearson(pred, gold)), ("spearmanr".into(), metrics::spearman(pred, gold))]
}

/// The metric a problem type selects the best model by, unless `--metric-for-best-model` says
/// otherwise: accuracy, macro F1 over the labels (multi-label), Pearson (regression).
pub fn main_metric(problem: ProblemType) -> &'static str {
    match problem {
        ProblemType::SingleLabel => "accuracy",
        ProblemType::MultiLabel => "f1_macro",
        ProblemType::Regression => "pearson",
    }
}

/// Everything an evaluation reports: the scores, and per-class detail where there is one.
pub struct Report {
    pub scores: Scores,
    pub per_class: Vec<Prf>,
    pub confusion: Option<Vec<Vec<usize>>>,
}

/// Scores `logits` (rows of `k`) against gold labels.
pub fn evaluate(problem: ProblemType, logits: &[Vec<f32>], gold: &Labels, threshold: f64) -> Report {
    match (problem, gold) {
        (ProblemType::SingleLabel, Labels::Classes(g)) => {
            let k = logits.first().map_or(0, Vec::len);
            let pred: Vec<i64> = logits.iter().map(|l| argmax(l) as i64).collect();
            let (scores, per_class, cm) = single_label_scores(&pred, g, k);
            Report { scores, per_class, confusion: Some(cm) }
        }
        (ProblemType::MultiLabel, Labels::MultiHot { num_labels, values }) => {
            let prob: Vec<f64> = logits.iter().flatten().map(|&x| sigmoid(x)).collect();
            let (scores, per_class) = multi_label_scores(&prob, values, *num_labels, threshold);
            Report { scores, per_class, confusion: None }
        }
        (_, Labels::Scores(g)) => {
            let pred: Vec<f64> = logits.iter().map(|l| l[0] as f64).collect();
            let gold: Vec<f64> = g.iter().map(|&x| x as f64).collect();
            Report { scores: regression_scores(&pred, &gold), per_class: Vec::new(), confusion: None }
        }
        _ => unreachable!("labels are built for the problem type"),
    }
}

/// Per-class metrics as `eval_<label>_f1` (and precision / recall / support) entries.
pub fn per_class_json(names: &[String], per_class: &[Prf], prefix: &str) -> Map<String, Value> {
    let mut m = Map::new();
    for (n, p) in names.iter().zip(per_class) {
        m.insert(format!("{prefix}_{n}_precision"), json!(p.precision));
        m.insert(format!("{prefix}_{n}_recall"), json!(p.recall));
        m.insert(format!("{prefix}_{n}_f1"), json!(p.f1));
        m.insert(format!("{prefix}_{n}_support"), json!(p.support));
    }
    m
}

/// sklearn's `classification_report(digits=4)` text: one row per class, then accuracy (single
/// label) or micro average (multi-label), macro and weighted averages.
pub fn classification_report(names: &[String], per_class: &[Prf], scores: &Scores) -> String {
    let get = |k: &str| scores.iter().find(|(n, _)| n == k).map_or(f64::NAN, |(_, v)| *v);
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0).max("weighted avg".len());
    let total: usize = per_class.iter().map(|p| p.support).sum();
    let mut s = format!("{:>width$} {:>9} {:>9} {:>9} {:>9}\n\n", "", "precision", "recall", "f1-score", "support");
    for (n, p) in names.iter().zip(per_class) {
        s += &format!("{n:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n", p.precision, p.recall, p.f1, p.support);
    }
    s.push('\n');
    if scores.iter().any(|(n, _)| n == "accuracy") {
        s += &format!("{:>width$} {:>9} {:>9} {:>9.4} {:>9}\n", "accuracy", "", "", get("accuracy"), total);
    } else {
        s += &format!("{:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n", "micro avg", get("precision_micro"), get("recall_micro"), get("f1_micro"), total);
    }
    for avg in ["macro", "weighted"] {
        let v = |m: &str| get(&format!("{m}_{avg}"));
        s += &format!("{:>width$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n", format!("{avg} avg"), v("precision"), v("recall"), v("f1"), total);
    }
    s
}
