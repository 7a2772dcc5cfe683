//! The examples of `finetune classify` from a user's table: which columns hold the text (one, or a
//! pair) and the label; what kind of problem the labels make (one class, a set of classes, a
//! number), inferred as run_classification.py infers it; the label list (given, or the training
//! labels sorted as run_classification sorts them); a seeded stratified validation split; and the
//! checks that catch a broken file before a run is wasted on it (missing columns, empty texts,
//! unknown labels, labels seen only in validation, validation texts that also occur in training).
use crate::data::batch::Labels;
use crate::data::table::{Record, Table};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;

/// A data set's name for reports and `finetuning_task`: the training file's stem, or its folder's
/// name when the stem says nothing (`goemotions/train.tsv` → `goemotions`).
pub fn data_name(train_file: &std::path::Path) -> String {
    let stem = train_file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let generic = ["train", "training", "data", "dataset", ""].contains(&stem.to_ascii_lowercase().as_str());
    match train_file.parent().and_then(|p| p.file_name()) {
        Some(dir) if generic => dir.to_string_lossy().to_string(),
        _ => stem,
    }
}

/// What the labels are, with transformers' `problem_type` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProblemType {
    #[serde(rename = "single_label_classification")]
    SingleLabel,
    #[serde(rename = "multi_label_classification")]
    MultiLabel,
    #[serde(rename = "regression")]
    Regression,
}

impl FromStr for ProblemType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "single_label" | "single_label_classification" => ProblemType::SingleLabel,
            "multi_label" | "multi_label_classification" => ProblemType::MultiLabel,
            "regression" => ProblemType::Regression,
            _ => return Err(Error::Invalid(format!("problem type `{s}`; expected single_label, multi_label or regression"))),
        })
    }
}

impl ProblemType {
    /// transformers' name, as config.json stores it.
    pub fn hf_name(self) -> &'static str {
        match self {
            ProblemType::SingleLabel => "single_label_classification",
            ProblemType::MultiLabel => "multi_label_classification",
            ProblemType::Regression => "regression",
        }
    }
}

/// Which fields hold what.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Columns {
    /// One text column, or two for a pair.
    pub text: Vec<String>,
    pub label: String,
    /// Splits a text label into several (multi-label), e.g. `,` for `4,27`.
    pub label_delimiter: Option<String>,
}

/// A label as the file writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum RawLabel {
    /// One value; `float` when it is written as a decimal number (`3.8`, `5.000`, a JSON float).
    One { text: String, float: bool },
    Many(Vec<String>),
}

/// An example before its label is mapped to ids.
#[derive(Debug, Clone, PartialEq)]
pub struct RawExample {
    pub line: usize,
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: Option<RawLabel>,
}

/// Rows dropped by `--skip-bad-rows`: (line, why).
pub type Skipped = Vec<(usize, String)>;

/// A mapped label.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Class(i64),
    Classes(Vec<i64>),
    Score(f32),
}

/// Pulls text and label fields out of a table. `need_labels`: every row must have a label
/// (training and validation files); otherwise rows without one are kept unlabelled (test files).
pub fn raw_examples(table: &Table, cols: &Columns, need_labels: bool, skip_bad_rows: bool) -> Result<(Vec<RawExample>, Skipped)> {
    let mut wanted: Vec<&String> = cols.text.iter().collect();
    if need_labels {
        wanted.push(&cols.label);
    }
    for c in wanted {
        if !table.columns.contains(c) {
            let flag = if c == &cols.label { "--label-column-name" } else { "--text-column-names" };
            return Err(Error::file(&table.path, format!("no column `{c}`; the file has: {} (choose with {flag})", table.columns.join(", "))));
        }
    }
    let mut out = Vec::new();
    let mut skipped = table.skipped.clone();
    for r in &table.records {
        match raw_example(r, cols, need_labels) {
            Ok(ex) => out.push(ex),
            Err(msg) if skip_bad_rows => skipped.push((r.line, msg)),
            Err(msg) => return Err(table.error(r.line, format!("{msg} (--skip-bad-rows drops such rows)"))),
        }
    }
    Ok((out, skipped))
}

fn raw_example(r: &Record, cols: &Columns, need_labels: bool) -> std::result::Result<RawExample, String> {
    let text = |c: &String| -> std::result::Result<String, String> {
        match r.fields.get(c) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) | Some(Value::Null) | None => Err(format!("empty text in column `{c}`")),
            Some(v) => Err(format!("column `{c}`: expected text, found {v}")),
        }
    };
    let text_a = text(&cols.text[0])?;
    let text_b = cols.text.get(1).map(text).transpose()?;
    let label = match r.fields.get(&cols.label) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(match &cols.label_delimiter {
            Some(d) => RawLabel::Many(s.split(d.as_str()).map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()),
            None => {
                let t = s.trim();
                RawLabel::One { text: t.to_string(), float: t.parse::<f64>().is_ok() && t.contains(['.', 'e', 'E']) }
            }
        }),
        Some(Value::Number(n)) => Some(RawLabel::One { text: n.to_string(), float: n.is_f64() }),
        Some(Value::Bool(b)) => Some(RawLabel::One { text: b.to_string(), float: false }),
        Some(Value::Array(items)) => Some(RawLabel::Many(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    other => Err(format!("column `{}`: a label list holds {other}", cols.label)),
                })
                .collect::<std::result::Result<_, _>>()?,
        )),
        Some(v) => return Err(format!("column `{}`: expected a label, found {v}", cols.label)),
    };
    if need_labels && label.is_none() {
        return Err(format!("no label in column `{}`", cols.label));
    }
    Ok(RawExample { line: r.line, text_a, text_b, label })
}

/// The problem the training labels make, as run_classification.py decides it: lists (or a label
/// delimiter) make multi-label classification, decimal numbers regression, anything else
/// single-label classification.
pub fn infer_problem_type(train: &[RawExample], delimiter: bool) -> ProblemType {
    let labels = || train.iter().filter_map(|e| e.label.as_ref());
    if delimiter || labels().any(|l| matches!(l, RawLabel::Many(_))) {
        ProblemType::MultiLabel
    } else if labels().all(|l| matches!(l, RawLabel::One { text, .. } if text.parse::<f64>().is_ok())) && labels().any(|l| matches!(l, RawLabel::One { float: true, .. })) {
        ProblemType::Regression
    } else {
        ProblemType::SingleLabel
    }
}

/// What an inferred problem type may hide in mixed labels: an error when most labels are decimal
/// numbers but some are words (a regression file with a typo would otherwise train a classifier
/// with a class per score), warnings when a few lists made the set multi-label or numbers mix with
/// names as classes (unless `list_given`: then numbers index the list). Each names the first line at fault; `--problem-type` settles any of them.
pub fn check_inferred_labels(table: &Table, train: &[RawExample], problem: ProblemType, list_given: bool) -> Result<Vec<String>> {
    let ones: Vec<(&str, usize)> = train.iter().filter_map(|e| match &e.label {
        Some(RawLabel::One { text, .. }) => Some((text.as_str(), e.line)),
        _ => None,
    }).collect();
    let lists: Vec<usize> = train.iter().filter(|e| matches!(e.label, Some(RawLabel::Many(_)))).map(|e| e.line).collect();
    let decimals = train.iter().filter(|e| matches!(e.label, Some(RawLabel::One { float: true, .. }))).count();
    let word = ones.iter().find(|(t, _)| t.parse::<f64>().is_err());
    let mut warnings = vec![];
    match problem {
        ProblemType::SingleLabel if decimals * 2 > ones.len() => {
            if let Some((t, line)) = word {
                return Err(table.error(*line, format!("label `{t}` is not a number, but {decimals} of {} labels are decimals: fix the line for regression, or pass --problem-type single_label to make every value a class", ones.len())));
            }
        }
        ProblemType::MultiLabel if !lists.is_empty() && lists.len() < ones.len() => warnings.push(format!(
            "{} of {} training labels are lists (the first on line {}): training multi-label; pass --problem-type single_label if those lists are mistakes",
            lists.len(), lists.len() + ones.len(), lists[0]
        )),
        // With --label-list, numbers are indices into it (GoEmotions writes ids).
        ProblemType::SingleLabel if !list_given => {
            let number = ones.iter().find(|(t, _)| t.parse::<i64>().is_ok());
            if let (Some((n, n_line)), Some((w, w_line))) = (number, word) {
                warnings.push(format!("labels mix numbers (`{n}`, line {n_line}) and names (`{w}`, line {w_line}): each value is a class of its own"));
            }
        }
        _ => {}
    }
    Ok(warnings)
}

/// The training file's distinct labels, sorted as run_classification sorts them (numerically when
/// every label is an integer, else by code point).
pub fn label_list_from(train: &[RawExample]) -> Vec<String> {
    let mut set: Vec<String> = train
        .iter()
        .filter_map(|e| e.label.as_ref())
        .flat_map(|l| match l {
            RawLabel::One { text, .. } => vec![text.clone()],
            RawLabel::Many(v) => v.clone(),
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if set.iter().all(|s| s.parse::<i64>().is_ok()) {
        set.sort_by_key(|s| s.parse::<i64>().unwrap_or(0));
    } else {
        set.sort();
    }
    set
}

/// Maps labels to ids: a label is a name in `labels`, or, when the list was given
/// (`--label-list`), an integer index into it (GoEmotions writes ids). Every unknown label is an
/// error; the message lists them with the line each first appears on.
pub fn map_labels(table: &Table, raw: &[RawExample], problem: ProblemType, labels: &[String], list_given: bool) -> Result<Vec<Option<Target>>> {
    let index: BTreeMap<&str, i64> = labels.iter().enumerate().map(|(i, n)| (n.as_str(), i as i64)).collect();
    let id = |s: &str| -> Option<i64> {
        index.get(s).copied().or_else(|| list_given.then(|| s.parse::<usize>().ok().filter(|&i| i < labels.len()).map(|i| i as i64)).flatten())
    };
    let mut unknown: BTreeMap<String, usize> = BTreeMap::new();
    let mut targets = Vec::with_capacity(raw.len());
    for e in raw {
        let t = match (&e.label, problem) {
            (None, _) => None,
            (Some(RawLabel::One { text, .. }), ProblemType::Regression) => match text.parse::<f32>() {
                Ok(v) if v.is_finite() => Some(Target::Score(v)),
                _ => return Err(table.error(e.line, format!("label `{text}` is not a number (the problem is regression)"))),
            },
            (Some(RawLabel::Many(_)), ProblemType::Regression | ProblemType::SingleLabel) => {
                return Err(table.error(e.line, format!("a list of labels, but the problem is {}; pass --problem-type multi_label", problem.hf_name())));
            }
            (Some(RawLabel::One { text, .. }), ProblemType::SingleLabel) => match id(text) {
                Some(i) => Some(Target::Class(i)),
                None => {
                    unknown.entry(text.clone()).or_insert(e.line);
                    None
                }
            },
            (Some(l), ProblemType::MultiLabel) => {
                let names = match l {
                    RawLabel::One { text, .. } => std::slice::from_ref(text),
                    RawLabel::Many(v) => v.as_slice(),
                };
                let mut ids = Vec::new();
                for n in names {
                    match id(n) {
                        Some(i) => ids.push(i),
                        None => {
                            unknown.entry(n.clone()).or_insert(e.line);
                        }
                    }
                }
                ids.sort_unstable();
                ids.dedup();
                Some(Target::Classes(ids))
            }
        };
        targets.push(t);
    }
    if !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().take(20).map(|(l, line)| format!("`{l}` (line {line})")).collect();
        let more = if unknown.len() > 20 { format!(" and {} more", unknown.len() - 20) } else { String::new() };
        let known = if list_given { "not in --label-list".to_string() } else { "never seen in the training file".to_string() };
        return Err(Error::file(&table.path, format!("{} label(s) {known}: {}{more}", unknown.len(), list.join(", "))));
    }
    Ok(targets)
}

/// Gold labels as the model's loss takes them.
pub fn labels_of(targets: &[Option<Target>], problem: ProblemType, num_labels: usize) -> Option<Labels> {
    let all: Option<Vec<&Target>> = targets.iter().map(Option::as_ref).collect();
    let all = all?;
    Some(match problem {
        ProblemType::SingleLabel => Labels::Classes(all.iter().map(|t| if let Target::Class(c) = t { *c } else { -100 }).collect()),
        ProblemType::Regression => Labels::Scores(all.iter().map(|t| if let Target::Score(s) = t { *s } else { f32::NAN }).collect()),
        ProblemType::MultiLabel => {
            let mut hot = vec![0f32; all.len() * num_labels];
            for (r, t) in all.iter().enumerate() {
                if let Target::Classes(ids) = t {
                    ids.iter().for_each(|&i| hot[r * num_labels + i as usize] = 1.0);
                }
            }
            Labels::MultiHot { num_labels, values: hot }
        }
    })
}

/// A seeded split of a training file into training and validation rows, stratified by label
/// (the label set for multi-label): one `torch.randperm(n)` from a generator seeded with `seed`
/// orders the rows, and each stratum gives its first round(fraction × size) rows in that order
/// to validation (bench/run_classification_ref.py draws the same split). Both index lists come
/// back in file order.
pub fn stratified_split(targets: &[Option<Target>], fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(Error::Invalid(format!("validation_split must lie strictly between 0 and 1, got {fraction}")));
    }
    let key = |t: &Option<Target>| -> String {
        match t {
            Some(Target::Class(c)) => c.to_string(),
            Some(Target::Classes(v)) => format!("{v:?}"),
            _ => String::new(),
        }
    };
    let mut size: BTreeMap<String, usize> = BTreeMap::new();
    targets.iter().for_each(|t| *size.entry(key(t)).or_default() += 1);
    let quota: BTreeMap<&String, usize> = size.iter().map(|(k, &n)| (k, (fraction * n as f64 + 0.5).floor() as usize)).collect();
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    let mut is_val = vec![false; targets.len()];
    for i in crate::torch_ext::randperm(targets.len(), seed)? {
        let k = key(&targets[i]);
        let t = taken.entry(k.clone()).or_default();
        if *t < quota[&k] {
            *t += 1;
            is_val[i] = true;
        }
    }
    let (val, train): (Vec<usize>, Vec<usize>) = (0..targets.len()).partition(|&i| is_val[i]);
    if train.is_empty() || val.is_empty() {
        return Err(Error::Invalid(format!("a validation split of {fraction} leaves {} training and {} validation rows", train.len(), val.len())));
    }
    Ok((train, val))
}

/// How many validation examples have the very text (pair) of a training example.
pub fn leaked(train: &[RawExample], validation: &[RawExample]) -> usize {
    let seen: HashSet<(&str, Option<&str>)> = train.iter().map(|e| (e.text_a.as_str(), e.text_b.as_deref())).collect();
    validation.iter().filter(|e| seen.contains(&(e.text_a.as_str(), e.text_b.as_deref()))).count()
}
