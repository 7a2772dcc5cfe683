//! SQuAD's official evaluation, rule for rule (evaluate-v1.1.py and evaluate-v2.0.py).
//!
//! Normalisation: lower-case; delete every character of Python's `string.punctuation`; replace the
//! whole words a, an, the by a space; collapse whitespace. EM is equality of normalised strings;
//! F1 is the token-overlap F1 of the normalised whitespace tokens (multiset intersection), 0 when
//! nothing overlaps; a question takes its maximum over gold answers; results are ×100.
//! v2.0 additionally drops gold answers that normalise to empty (a question left with none has
//! gold `[""]`), scores F1 = EM = (both empty) when either side has no tokens, reports HasAns/NoAns
//! breakdowns, applies `na_prob_thresh`, and with no-answer probabilities sweeps the best threshold.
//! A question without a prediction scores 0 with a warning (the v2.0 script would skip it).
use serde_json::{json, Map, Value};
use std::collections::HashMap;

const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// Python's `\w` for str patterns: Unicode alphanumerics and underscore.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `re.sub(r'\b(a|an|the)\b', ' ', text)`: a whole run of word characters equal to an article
/// becomes one space.
fn remove_articles(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_word(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let j = (i..chars.len()).find(|&j| !is_word(chars[j])).unwrap_or(chars.len());
        let word: String = chars[i..j].iter().collect();
        if matches!(word.as_str(), "a" | "an" | "the") {
            out.push(' ');
        } else {
            out.push_str(&word);
        }
        i = j;
    }
    out
}

pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower.chars().filter(|c| !PUNCTUATION.contains(*c)).collect();
    remove_articles(&no_punc).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Size of the multiset intersection of two token lists.
fn overlap(a: &[&str], b: &[&str]) -> usize {
    let mut counts: HashMap<&str, isize> = HashMap::new();
    for t in a {
        *counts.entry(t).or_default() += 1;
    }
    b.iter()
        .filter(|t| match counts.get_mut(*t) {
            Some(c) if *c > 0 => {
                *c -= 1;
                true
            }
            _ => false,
        })
        .count()
}

fn token_f1(pred: &[&str], gold: &[&str]) -> f64 {
    let same = overlap(pred, gold);
    if same == 0 {
        return 0.0;
    }
    let p = same as f64 / pred.len() as f64;
    let r = same as f64 / gold.len() as f64;
    2.0 * p * r / (p + r)
}

/// v1.1 exact match of one prediction against one gold answer.
pub fn exact_v1(pred: &str, gold: &str) -> f64 {
    (normalize_answer(pred) == normalize_answer(gold)) as u8 as f64
}

/// v1.1 F1 of one prediction against one gold answer.
pub fn f1_v1(pred: &str, gold: &str) -> f64 {
    let (p, g) = (normalize_answer(pred), normalize_answer(gold));
    token_f1(&p.split_whitespace().collect::<Vec<_>>(), &g.split_whitespace().collect::<Vec<_>>())
}

/// v2.0 F1: when either side has no tokens, 1 if both have none, else 0.
pub fn f1_v2(pred: &str, gold: &str) -> f64 {
    let (p, g) = (normalize_answer(pred), normalize_answer(gold));
    let (pt, gt): (Vec<&str>, Vec<&str>) = (p.split_whitespace().collect(), g.split_whitespace().collect());
    if pt.is_empty() || gt.is_empty() {
        return (pt == gt) as u8 as f64;
    }
    token_f1(&pt, &gt)
}

/// One question of the evaluated dataset.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: String,
    /// Gold answer texts as written in the dataset (may be empty for v2.0).
    pub answers: Vec<String>,
}

/// Per-question (EM, F1) as 0..1, in dataset order; `None` where no prediction was given.
pub fn raw_scores(questions: &[Question], preds: &Map<String, Value>, v2: bool) -> Vec<Option<(f64, f64)>> {
    questions
        .iter()
        .map(|q| {
            let Some(pred) = preds.get(&q.id) else {
                tracing::warn!("no prediction for question {}: it scores 0", q.id);
                return None;
            };
            let pred = pred.as_str().unwrap_or_default();
            let mut golds: Vec<&str> = q.answers.iter().map(String::as_str).collect();
            if v2 {
                golds.retain(|a| !normalize_answer(a).is_empty());
                if golds.is_empty() {
                    golds.push("");
                }
            }
            let best = |f: &dyn Fn(&str, &str) -> f64| golds.iter().map(|g| f(pred, g)).fold(0.0, f64::max);
            Some(if v2 { (best(&exact_v1), best(&f1_v2)) } else { (best(&exact_v1), best(&f1_v1)) })
        })
        .collect()
}

/// The official result dictionary. `na_probs` (v2.0) maps question ids to no-answer scores.
pub fn evaluate(questions: &[Question], preds: &Map<String, Value>, v2: bool, na_probs: Option<&Map<String, Value>>, na_prob_thresh: f64) -> Value {
    let raw = raw_scores(questions, preds, v2);
    let total = questions.len();
    if !v2 {
        let sum = |k: usize| raw.iter().flatten().map(|s| if k == 0 { s.0 } else { s.1 }).sum::<f64>();
        return json!({ "exact_match": 100.0 * sum(0) / total.max(1) as f64, "f1": 100.0 * sum(1) / total.max(1) as f64 });
    }
    let has_ans: Vec<bool> = questions.iter().map(|q| !q.answers.is_empty()).collect();
    let na = |id: &str| na_probs.and_then(|m| m.get(id)).and_then(Value::as_f64).unwrap_or(0.0);
    // Scores after the threshold: a question predicted unanswerable scores 1 exactly when it is.
    let thresholded: Vec<(f64, f64)> = questions
        .iter()
        .zip(&raw)
        .zip(&has_ans)
        .map(|((q, s), &has)| if na(&q.id) > na_prob_thresh { ((!has) as u8 as f64, (!has) as u8 as f64) } else { s.unwrap_or((0.0, 0.0)) })
        .collect();
    let dict = |keep: &dyn Fn(usize) -> bool| {
        let idx: Vec<usize> = (0..total).filter(|&i| keep(i)).collect();
        let n = idx.len().max(1) as f64;
        (100.0 * idx.iter().map(|&i| thresholded[i].0).sum::<f64>() / n, 100.0 * idx.iter().map(|&i| thresholded[i].1).sum::<f64>() / n, idx.len())
    };
    let (exact, f1, n) = dict(&|_| true);
    let mut out = Map::new();
    out.insert("exact".into(), json!(exact));
    out.insert("f1".into(), json!(f1));
    out.insert("total".into(), json!(n));
    for (name, want) in [("HasAns", true), ("NoAns", false)] {
        if has_ans.contains(&want) {
            let (e, f, n) = dict(&|i| has_ans[i] == want);
            out.insert(format!("{name}_exact"), json!(e));
            out.insert(format!("{name}_f1"), json!(f));
            out.insert(format!("{name}_total"), json!(n));
        }
    }
    if let Some(probs) = na_probs {
        for (k, which) in [("exact", 0), ("f1", 1)] {
            let (best, thresh) = best_threshold(questions, preds, &raw, &has_ans, probs, which);
            out.insert(format!("best_{k}"), json!(best));
            out.insert(format!("best_{k}_thresh"), json!(thresh));
        }
    }
    Value::Object(out)
}

/// The official `find_best_thresh`: walk questions by increasing no-answer probability (stable, in
/// the file's order on ties), answering every question up to each point and abstaining on the rest.
fn best_threshold(
    questions: &[Question],
    preds: &Map<String, Value>,
    raw: &[Option<(f64, f64)>],
    has_ans: &[bool],
    probs: &Map<String, Value>,
    which: usize,
) -> (f64, f64) {
    let index: HashMap<&str, usize> = questions.iter().enumerate().map(|(i, q)| (q.id.as_str(), i)).collect();
    let mut order: Vec<(&String, f64)> = probs.iter().map(|(k, v)| (k, v.as_f64().unwrap_or(0.0))).collect();
    order.sort_by(|a, b| a.1.total_cmp(&b.1));
    let answered = raw.iter().filter(|s| s.is_some()).count();
    let mut cur = has_ans.iter().filter(|h| !**h).count() as f64;
    let (mut best, mut thresh) = (cur, 0.0);
    for (id, p) in order {
        let Some(&i) = index.get(id.as_str()) else { continue };
        let Some(s) = raw[i] else { continue };
        cur += if has_ans[i] {
            if which == 0 { s.0 } else { s.1 }
        } else if preds.get(id.as_str()).and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
            -1.0
        } else {
            0.0
        };
        if cur > best {
            best = cur;
            thresh = p;
        }
    }
    (100.0 * best / answered.max(1) as f64, thresh)
}
