//! Extractive-QA post-processing with the semantics of transformers' utils_qa.py: over all windows
//! of an example, the top `n_best_size` start and end logits form candidate spans; spans outside
//! the context, reversed, or longer than `max_answer_length` tokens are dropped; a span scores
//! start + end logit and maps back to the context through the tokenizer's offsets. For v2.0 the
//! null score is the CLS start + end logit (minimum over windows), and the answer is "" when
//! null − best span > `null_score_diff_threshold`.
use crate::data::qa_features::QaFeature;
use crate::data::squad::SquadExample;
use serde::Serialize;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy)]
pub struct PostConfig {
    pub n_best_size: usize,
    pub max_answer_length: usize,
    pub version_2: bool,
    pub null_score_diff_threshold: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub text: String,
    pub probability: f64,
    pub start_logit: f64,
    pub end_logit: f64,
    /// Character offsets of the answer in the context (absent for the null answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets: Option<(usize, usize)>,
    /// Byte span in the context (absent for the null answer).
    #[serde(skip)]
    pub span: Option<(usize, usize)>,
    #[serde(skip)]
    pub score: f64,
}

pub struct Predictions {
    /// Question id → answer text.
    pub predictions: Map<String, Value>,
    pub nbest: Map<String, Value>,
    /// v2.0: question id → null score − best span score.
    pub null_odds: Map<String, Value>,
}

/// Indices of the `n` largest values, largest first (ties by position).
fn top_n(v: &[f32], n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(n);
    idx
}

/// `start_logits[f]` / `end_logits[f]` belong to `features[f]`.
pub fn postprocess(
    examples: &[SquadExample],
    features: &[QaFeature],
    start_logits: &[Vec<f32>],
    end_logits: &[Vec<f32>],
    cfg: PostConfig,
) -> Predictions {
    let mut by_example: Vec<Vec<usize>> = vec![Vec::new(); examples.len()];
    for (f, feat) in features.iter().enumerate() {
        by_example[feat.example].push(f);
    }
    let mut out = Predictions { predictions: Map::new(), nbest: Map::new(), null_odds: Map::new() };
    for (ei, ex) in examples.iter().enumerate() {
        let mut prelim: Vec<Candidate> = Vec::new();
        let mut null: Option<Candidate> = None;
        for &f in &by_example[ei] {
            let (sl, el, offsets) = (&start_logits[f], &end_logits[f], &features[f].offsets);
            let null_score = (sl[0] + el[0]) as f64;
            if null.as_ref().is_none_or(|n| n.score > null_score) {
                null = Some(Candidate { text: String::new(), probability: 0.0, start_logit: sl[0] as f64, end_logit: el[0] as f64, offsets: None, span: None, score: null_score });
            }
            for &s in &top_n(sl, cfg.n_best_size) {
                for &e in &top_n(el, cfg.n_best_size) {
                    let (Some(Some(so)), Some(Some(eo))) = (offsets.get(s), offsets.get(e)) else { continue };
                    if e < s || e - s + 1 > cfg.max_answer_length {
                        continue;
                    }
                    prelim.push(Candidate {
                        text: ex.context[so.0..eo.1].to_string(),
                        probability: 0.0,
                        start_logit: sl[s] as f64,
                        end_logit: el[e] as f64,
                        offsets: None,
                        span: Some((so.0, eo.1)),
                        score: (sl[s] + el[e]) as f64,
                    });
                }
            }
        }
        if cfg.version_2 {
            prelim.extend(null.clone());
        }
        // Stable, best first: equal scores keep their order, as Python's sorted(reverse=True).
        prelim.sort_by(|a, b| b.score.total_cmp(&a.score));
        prelim.truncate(cfg.n_best_size);
        if cfg.version_2 && !prelim.iter().any(|c| c.span.is_none()) {
            prelim.extend(null.clone());
        }
        if prelim.is_empty() || (prelim.len() == 1 && prelim[0].text.is_empty()) {
            prelim.insert(0, Candidate { text: "empty".into(), probability: 0.0, start_logit: 0.0, end_logit: 0.0, offsets: None, span: None, score: 0.0 });
        }
        let max = prelim.iter().map(|c| c.score).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = prelim.iter().map(|c| (c.score - max).exp()).sum();
        for c in &mut prelim {
            c.probability = (c.score - max).exp() / z;
            let chars = |b: usize| ex.context[..b].chars().count();
            c.offsets = c.span.map(|(s, e)| (chars(s), chars(e)));
        }
        let answer = if !cfg.version_2 {
            prelim[0].text.clone()
        } else {
            let best = prelim.iter().find(|c| !c.text.is_empty()).expect("an `empty` candidate is always present");
            let null_score = null.as_ref().map_or(0.0, |n| n.score);
            let diff = null_score - best.start_logit - best.end_logit;
            out.null_odds.insert(ex.id.clone(), serde_json::json!(diff));
            if diff > cfg.null_score_diff_threshold { String::new() } else { best.text.clone() }
        };
        out.predictions.insert(ex.id.clone(), Value::String(answer));
        out.nbest.insert(ex.id.clone(), serde_json::to_value(&prelim).expect("candidates serialise"));
    }
    out
}
