//! Entity-level scores of tag sequences exactly as seqeval 1.2.2 computes them in its default
//! (conlleval-compatible) mode, which is what transformers' run_ner reports: entities are chunked
//! with conlleval's start/end rules (so ill-formed sequences — `I-` after `O`, `I-` of another
//! type, IOB1's `B-` — are read the way conlleval reads them), sentences never join, and micro
//! precision / recall / F1 come from the summed per-type counts with a zero for 0/0; token
//! accuracy counts equal tags. The same float operations in the same order, so the numbers are
//! seqeval's to the last bit.
use crate::eval::classification::Prf;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// An entity: type, first and last token index in the flattened sequence.
pub type Entity = (String, usize, usize);

/// The prefix character and type of a tag, as seqeval splits it (`B-PER` → `B`, `PER`; `O` → `O`,
/// `_`; a tag without a type gets `_`).
fn split(tag: &str) -> (char, String) {
    let mut chars = tag.chars();
    let prefix = chars.next().unwrap_or('O');
    let rest = chars.as_str();
    let kind = rest.split_once('-').map_or(rest, |(_, t)| t);
    (prefix, if kind.is_empty() { "_".into() } else { kind.to_string() })
}

fn end_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(prev_tag, 'E' | 'S')
        || (matches!(prev_tag, 'B' | 'I') && matches!(tag, 'B' | 'S' | 'O'))
        || (prev_tag != 'O' && prev_tag != '.' && prev_type != kind)
}

fn start_of_chunk(prev_tag: char, tag: char, prev_type: &str, kind: &str) -> bool {
    matches!(tag, 'B' | 'S')
        || (matches!(prev_tag, 'E' | 'S' | 'O') && matches!(tag, 'E' | 'I'))
        || (tag != 'O' && tag != '.' && prev_type != kind)
}

/// seqeval's `get_entities` over sentences: they are joined with an `O` between them, so indices
/// run over that flattened sequence.
pub fn entities<S: AsRef<str>>(sentences: &[Vec<S>]) -> Vec<Entity> {
    let flat = sentences.iter().flat_map(|s| s.iter().map(AsRef::as_ref).chain(["O"]));
    let (mut prev_tag, mut prev_type, mut begin) = ('O', String::new(), 0);
    let mut chunks = Vec::new();
    for (i, tag) in flat.chain(["O"]).enumerate() {
        let (t, kind) = split(tag);
        if end_of_chunk(prev_tag, t, &prev_type, &kind) {
            chunks.push((prev_type.clone(), begin, i - 1));
        }
        if start_of_chunk(prev_tag, t, &prev_type, &kind) {
            begin = i;
        }
        prev_tag = t;
        prev_type = kind;
    }
    chunks
}

/// Precision, recall, F1 and support (gold entities) of one entity type or of all (micro), from
/// the counts of true positives, predicted and gold entities.
fn prf(tp: usize, predicted: usize, gold: usize) -> Prf {
    let divide = |n: usize, d: usize| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let (p, r) = (divide(tp, predicted), divide(tp, gold));
    // seqeval's F-beta with beta = 1: (1 + β²)·p·r / (β²·p + r), a zero denominator made 1.
    let denom = if p + r == 0.0 { 1.0 } else { p + r };
    Prf { precision: p, recall: r, f1: 2.0 * p * r / denom, support: gold }
}

/// run_ner's scores: micro over all types, per type (sorted by name), and token accuracy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub overall: Prf,
    pub per_type: BTreeMap<String, Prf>,
    pub accuracy: f64,
}

/// Scores `predicted` against `gold` (the same sentence lengths).
pub fn score<S: AsRef<str>, T: AsRef<str>>(gold: &[Vec<S>], predicted: &[Vec<T>]) -> Scores {
    let group = |ents: Vec<Entity>| {
        let mut m: BTreeMap<String, BTreeSet<(usize, usize)>> = BTreeMap::new();
        for (t, s, e) in ents {
            m.entry(t).or_default().insert((s, e));
        }
        m
    };
    let (g, p) = (group(entities(gold)), group(entities(predicted)));
    let types: BTreeSet<&String> = g.keys().chain(p.keys()).collect();
    let empty = BTreeSet::new();
    let (mut tp_all, mut pred_all, mut gold_all) = (0, 0, 0);
    let mut per_type = BTreeMap::new();
    for t in types {
        let (gt, pt) = (g.get(t).unwrap_or(&empty), p.get(t).unwrap_or(&empty));
        let tp = gt.intersection(pt).count();
        per_type.insert(t.clone(), prf(tp, pt.len(), gt.len()));
        (tp_all, pred_all, gold_all) = (tp_all + tp, pred_all + pt.len(), gold_all + gt.len());
    }
    let tokens = gold.iter().zip(predicted).flat_map(|(g, p)| g.iter().zip(p));
    let (correct, total) = tokens.fold((0usize, 0usize), |(c, n), (g, p)| (c + (g.as_ref() == p.as_ref()) as usize, n + 1));
    Scores {
        overall: prf(tp_all, pred_all, gold_all),
        per_type,
        accuracy: if total == 0 { 0.0 } else { correct as f64 / total as f64 },
    }
}

/// run_ner's metric names (`eval_precision`, ..., `eval_<TYPE>_f1`) under `prefix`.
pub fn metrics(prefix: &str, s: &Scores) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(format!("{prefix}_precision"), json!(s.overall.precision));
    m.insert(format!("{prefix}_recall"), json!(s.overall.recall));
    m.insert(format!("{prefix}_f1"), json!(s.overall.f1));
    m.insert(format!("{prefix}_accuracy"), json!(s.accuracy));
    for (t, p) in &s.per_type {
        m.insert(format!("{prefix}_{t}_precision"), json!(p.precision));
        m.insert(format!("{prefix}_{t}_recall"), json!(p.recall));
        m.insert(format!("{prefix}_{t}_f1"), json!(p.f1));
        m.insert(format!("{prefix}_{t}_number"), json!(p.support));
    }
    m
}
