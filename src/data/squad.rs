//! SQuAD JSON (v1.1 and v2.0): articles → paragraphs → questions with answers. v2.0 adds
//! `is_impossible` (with empty `answers` and optional `plausible_answers`). Every structural problem
//! is an error naming the file and the JSON path of the offending element; `answer_start` is kept
//! as given (in characters, as the dataset defines it) and checked where spans are built.
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    /// Offset of the answer in the context, in characters (Unicode scalar values).
    pub answer_start: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SquadExample {
    pub id: String,
    pub title: String,
    pub context: String,
    pub question: String,
    pub answers: Vec<Answer>,
    pub is_impossible: bool,
    pub plausible_answers: Vec<Answer>,
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub version: String,
    /// Whether the file uses v2.0 semantics (a version starting with `v2`, or any `is_impossible`).
    pub v2: bool,
    pub examples: Vec<SquadExample>,
}

struct Ctx<'a> {
    path: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, at: &str, msg: impl std::fmt::Display) -> Error {
        Error::file(self.path, format!("{at}: {msg}"))
    }
    fn field<'v>(&self, v: &'v Value, at: &str, key: &str) -> Result<&'v Value> {
        v.get(key).ok_or_else(|| self.err(at, format!("missing field `{key}`")))
    }
    fn str(&self, v: &Value, at: &str, key: &str) -> Result<String> {
        match self.field(v, at, key)? {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.err(at, format!("`{key}` must be a string, found {other}"))),
        }
    }
    fn array<'v>(&self, v: &'v Value, at: &str, key: &str) -> Result<&'v Vec<Value>> {
        match self.field(v, at, key)? {
            Value::Array(a) => Ok(a),
            other => Err(self.err(at, format!("`{key}` must be an array, found {}", short(other)))),
        }
    }
    fn answers(&self, qa: &Value, at: &str, key: &str) -> Result<Vec<Answer>> {
        let Some(list) = qa.get(key) else { return Ok(vec![]) };
        let Value::Array(list) = list else { return Err(self.err(at, format!("`{key}` must be an array"))) };
        list.iter()
            .enumerate()
            .map(|(k, a)| {
                let at = format!("{at}.{key}[{k}]");
                let start = self.field(a, &at, "answer_start")?;
                let answer_start = start.as_u64().ok_or_else(|| self.err(&at, format!("`answer_start` must be a non-negative integer, found {start}")))?;
                Ok(Answer { text: self.str(a, &at, "text")?, answer_start: answer_start as usize })
            })
            .collect()
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 { s.chars().take(40).collect::<String>() + "…" } else { s }
}

pub fn read(path: &Path) -> Result<Dataset> {
    let bytes = crate::io::read(path)?;
    let root: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json { path: path.into(), source: e })?;
    let cx = Ctx { path };
    let version = root.get("version").and_then(Value::as_str).unwrap_or("").to_string();
    let mut examples = Vec::new();
    // Predictions and scores are keyed by id: a repeated id would drop a question silently.
    let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (a, article) in cx.array(&root, "root", "data")?.iter().enumerate() {
        let at_a = format!("data[{a}]");
        let title = article.get("title").and_then(Value::as_str).unwrap_or("").to_string();
        for (p, para) in cx.array(article, &at_a, "paragraphs")?.iter().enumerate() {
            let at_p = format!("{at_a}.paragraphs[{p}]");
            let context = cx.str(para, &at_p, "context")?;
            for (q, qa) in cx.array(para, &at_p, "qas")?.iter().enumerate() {
                let at = format!("{at_p}.qas[{q}]");
                let is_impossible = match qa.get("is_impossible") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => return Err(cx.err(&at, format!("`is_impossible` must be true or false, found {other}"))),
                };
                let answers = cx.answers(qa, &at, "answers")?;
                if qa.get("answers").is_none() {
                    return Err(cx.err(&at, "missing field `answers`"));
                }
                if is_impossible && !answers.is_empty() {
                    return Err(cx.err(&at, "`is_impossible` is true but `answers` is not empty"));
                }
                let id = match cx.field(qa, &at, "id")? {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => return Err(cx.err(&at, format!("`id` must be a string, found {other}"))),
                };
                if let Some(first) = seen.insert(id.clone(), at.clone()) {
                    return Err(cx.err(&at, format!("question id `{id}` is also {first}'s: ids must be unique (predictions and scores are keyed by id)")));
                }
                examples.push(SquadExample {
                    id,
                    title: title.clone(),
                    context: context.clone(),
                    question: cx.str(qa, &at, "question")?,
                    answers,
                    is_impossible,
                    plausible_answers: cx.answers(qa, &at, "plausible_answers")?,
                });
            }
        }
    }
    if examples.is_empty() {
        return Err(Error::file(path, "no questions; expected data[].paragraphs[].qas[]"));
    }
    let v2 = version.starts_with("v2") || version.starts_with('2') || examples.iter().any(|e| e.is_impossible);
    Ok(Dataset { version, v2, examples })
}

/// Byte offset of character `chars` in `s`, if `s` has that many characters.
pub fn char_to_byte(s: &str, chars: usize) -> Option<usize> {
    if chars == 0 {
        return Some(0);
    }
    s.char_indices().map(|(b, _)| b).chain(std::iter::once(s.len())).nth(chars)
}

/// Byte span of an answer in its context, or why it does not fit there.
pub fn answer_span(context: &str, a: &Answer) -> std::result::Result<(usize, usize), String> {
    let start = char_to_byte(context, a.answer_start)
        .ok_or_else(|| format!("answer_start {} is past the end of the context ({} characters)", a.answer_start, context.chars().count()))?;
    let end = char_to_byte(&context[start..], a.text.chars().count())
        .map(|e| start + e)
        .ok_or_else(|| format!("answer `{}` at {} runs past the end of the context", a.text, a.answer_start))?;
    if context[start..end] != a.text {
        return Err(format!("context at {} reads `{}`, not the answer `{}`", a.answer_start, &context[start..end], a.text));
    }
    Ok((start, end))
}
