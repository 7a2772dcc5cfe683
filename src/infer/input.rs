//! Input files of `finetune predict`: JSONL (one `{"text": ..., "text_pair": ...}` object per line;
//! other keys such as `id` or `label` are allowed and `id` is carried through), a CSV or TSV with
//! `text` (and optionally `text_pair` and `id`) columns, or a GLUE file of the task the model was
//! fine-tuned on (dev or test layout). Every error names the file and line.
use crate::data::glue::{self, Task};
use crate::error::{Error, Result};
use crate::infer::Input;
use serde_json::Value;
use std::path::Path;

/// An input with the identifier written next to its prediction.
pub struct Row {
    pub id: String,
    pub input: Input,
}

pub fn read(path: &Path, task: Option<&str>) -> Result<Vec<Row>> {
    let rows = match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "json") => read_jsonl(path)?,
        Some("csv") => read_csv(path)?,
        _ => read_tsv(path, task)?,
    };
    if rows.is_empty() {
        return Err(Error::file(path, "no inputs; expected at least one"));
    }
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.input.empty_field().is_some()) {
        return Err(Error::file(path, format!("input `{}` (input {} of {}) has an empty text", r.id, i + 1, rows.len())));
    }
    Ok(rows)
}

fn read_jsonl(path: &Path) -> Result<Vec<Row>> {
    let bytes = crate::io::read(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::file(path, format!("not UTF-8: {e}")))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::data(path, i + 1, m);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let field = |k: &str| -> Result<Option<String>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(format!("`{k}` must be a string, found {other}"))),
            }
        };
        let text = field("text")?.ok_or_else(|| bad("missing `text` (expected {\"text\": ..., \"text_pair\": ...})".into()))?;
        let id = match v.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => rows.len().to_string(),
        };
        rows.push(Row { id, input: Input { text, text_pair: field("text_pair")? } });
    }
    Ok(rows)
}

fn read_csv(path: &Path) -> Result<Vec<Row>> {
    use crate::data::table::{self, Format, ReadOptions};
    let t = table::read(path, &ReadOptions { format: Some(Format::Csv), ..Default::default() })?;
    if !t.columns.iter().any(|c| c == "text") {
        return Err(Error::data(path, 1, format!("header has no `text` column (header: {})", t.columns.join(", "))));
    }
    let field = |r: &table::Record, k: &str| r.fields.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(t.records
        .iter()
        .enumerate()
        .map(|(i, r)| Row { id: field(r, "id").unwrap_or_else(|| i.to_string()), input: Input { text: field(r, "text").unwrap_or_default(), text_pair: field(r, "text_pair") } })
        .collect())
}

fn read_tsv(path: &Path, task: Option<&str>) -> Result<Vec<Row>> {
    let table = crate::data::tsv::read(path, true)?;
    if let Some(text) = table.column("text") {
        let pair = table.column("text_pair");
        let id = table.column("id").or_else(|| table.column("index"));
        return Ok(table
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| Row {
                id: id.map_or_else(|| i.to_string(), |c| r[c].clone()),
                input: Input { text: r[text].clone(), text_pair: pair.map(|c| r[c].clone()) },
            })
            .collect());
    }
    let Some(task) = task.and_then(|t| t.parse::<Task>().ok()) else {
        return Err(Error::data(path, 1, format!("header has no `text` column (header: {})", table.header.join(" | "))));
    };
    // A GLUE dev file (with labels) or test file of the model's own task.
    let examples = glue::read_labelled(task, path).or_else(|_| glue::read_unlabelled(task, path))?;
    Ok(examples.into_iter().map(|e| Row { id: e.id, input: Input { text: e.text_a, text_pair: e.text_b } }).collect())
}
