//! The CoNLL-2003 shared task's baseline (Tjong Kim Sang & De Meulder 2003): tag only the
//! entities of the training data whose exact token sequence has one class there, wherever that
//! sequence recurs — longest match first, left to right. It gives NER reports their "before
//! fine-tuning" row (the overview paper: English test F1 59.61).
use crate::data::conll::{self, ReadOptions, Sentence};
use crate::error::Result;
use crate::eval::seqeval;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;

/// Each sentence's baseline tags (IOB2) from the entities of `train`.
pub fn tag(train: &[Sentence], sentences: &[Sentence]) -> Vec<Vec<String>> {
    let mut classes: HashMap<Vec<String>, Option<String>> = HashMap::new();
    for s in train {
        for (kind, a, b) in seqeval::entities(std::slice::from_ref(&s.tags)) {
            let entry = classes.entry(s.tokens[a..=b].to_vec()).or_insert_with(|| Some(kind.clone()));
            if entry.as_deref() != Some(kind.as_str()) {
                *entry = None;
            }
        }
    }
    let longest = classes.keys().map(Vec::len).max().unwrap_or(0);
    sentences
        .iter()
        .map(|s| {
            let mut tags = vec!["O".to_string(); s.tokens.len()];
            let mut i = 0;
            while i < s.tokens.len() {
                let hit = (1..=longest.min(s.tokens.len() - i)).rev().find_map(|n| classes.get(&s.tokens[i..i + n]).and_then(|c| c.clone()).map(|c| (n, c)));
                match hit {
                    Some((n, kind)) => {
                        for (k, tag) in tags[i..i + n].iter_mut().enumerate() {
                            *tag = format!("{}-{kind}", if k == 0 { "B" } else { "I" });
                        }
                        i += n;
                    }
                    None => i += 1,
                }
            }
            tags
        })
        .collect()
}

/// The baseline's scores (`eval_f1`, ...) on `dev`, learning from `train` (both read with the
/// default options: tags converted to IOB2).
pub fn scores(train: &Path, dev: &Path) -> Result<Map<String, Value>> {
    let (train, _) = conll::read(train, &ReadOptions::default())?;
    let (dev, _) = conll::read(dev, &ReadOptions::default())?;
    let gold: Vec<Vec<String>> = dev.iter().map(|s| s.tags.clone()).collect();
    Ok(seqeval::metrics("eval", &seqeval::score(&gold, &tag(&train, &dev))))
}
