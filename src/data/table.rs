//! Tabular files as users have them: CSV (RFC 4180 quoting, via the `csv` crate), TSV (the same
//! quoting with tabs, as pandas and the `datasets` CSV loader read it), JSON lines, a JSON array
//! of records, or plain text lines split into named fields by a regular expression
//! (`--line-regex`, e.g. TREC's `COARSE:fine question` lines). UTF-8 with or without a BOM, or
//! Latin-1. Every record keeps the line it starts on (its position for a JSON array), so each
//! later error names the file and the place.
use crate::error::{Error, Result};
use regex::Regex;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Tsv,
    Jsonl,
    Json,
    /// One record per non-blank line, fields from the named groups of `--line-regex`.
    Lines,
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "jsonl" | "ndjson" => Format::Jsonl,
            "json" => Format::Json,
            "lines" | "txt" | "text" => Format::Lines,
            _ => return Err(Error::Invalid(format!("format `{s}`; expected csv, tsv, jsonl, json or lines"))),
        })
    }
}

impl Format {
    /// The format a file name implies (`.csv`, `.tsv`, `.jsonl`, `.json`, `.txt`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "label" => Some(Format::Lines),
            e => e.parse().ok(),
        }
    }
}

/// Serialised as the `--encoding` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum Encoding {
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// ISO-8859-1: every byte is the character of the same number, so any file decodes.
    #[serde(rename = "latin-1")]
    Latin1,
}

impl FromStr for Encoding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "latin-1" | "latin1" | "iso-8859-1" => Ok(Encoding::Latin1),
            _ => Err(Error::Invalid(format!("encoding `{s}`; expected utf-8 or latin-1"))),
        }
    }
}

/// How to read a file; `format` defaults to the one its extension names.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    pub format: Option<Format>,
    pub encoding: Encoding,
    /// Names of the columns of a file without a header row (CSV/TSV): the first row is then data.
    pub column_names: Option<Vec<String>>,
    /// With `Format::Lines`: named groups become fields.
    pub line_regex: Option<Regex>,
    /// Drop malformed rows (counted, first ones reported) instead of failing.
    pub skip_bad_rows: bool,
}

/// One record: its fields, and where it starts in the file (1-based line, or position in a JSON
/// array).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub line: usize,
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub format: Format,
    /// Column names in file order (for JSON, in order of first appearance).
    pub columns: Vec<String>,
    pub records: Vec<Record>,
    /// Rows dropped by `skip_bad_rows`: (line, why).
    pub skipped: Vec<(usize, String)>,
}

impl Table {
    /// An error about `line` of this file (a record's position for a JSON array).
    pub fn error(&self, line: usize, msg: impl Into<String>) -> Error {
        match self.format {
            Format::Json => Error::file(&self.path, format!("record {line}: {}", msg.into())),
            _ => Error::data(&self.path, line, msg),
        }
    }
}

/// Reads `path` into records.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Table> {
    let format = match opts.format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => return Err(Error::file(path, "cannot tell the format from the extension: give --format csv|tsv|jsonl|json|lines")),
    };
    let text = decode(path, &crate::io::read(path)?, opts.encoding)?;
    let mut t = Table { path: path.into(), format, columns: Vec::new(), records: Vec::new(), skipped: Vec::new() };
    let bad = |t: &mut Table, line: usize, msg: String| -> Result<()> {
        if opts.skip_bad_rows {
            t.skipped.push((line, msg));
            Ok(())
        } else {
            Err(t.error(line, format!("{msg} (--skip-bad-rows drops such rows)")))
        }
    };
    match format {
        Format::Csv | Format::Tsv => {
            let delimiter = if format == Format::Csv { b',' } else { b'\t' };
            let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(false).flexible(true).from_reader(text.as_bytes());
            let mut rows = reader.records();
            t.columns = match &opts.column_names {
                Some(names) => names.clone(),
                None => match rows.next() {
                    Some(Ok(header)) => header.iter().map(str::to_string).collect(),
                    Some(Err(e)) => return Err(Error::file(path, format!("header row: {e}"))),
                    None => return Err(Error::file(path, "empty file: expected a header row")),
                },
            };
            if let Some(dup) = t.columns.iter().enumerate().find(|(i, c)| t.columns[..*i].contains(c)) {
                return Err(Error::file(path, format!("column `{}` appears twice", dup.1)));
            }
            for row in rows {
                let row = match row {
                    Ok(r) => r,
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line() as usize);
                        bad(&mut t, line, format!("malformed row: {e}"))?;
                        continue;
                    }
                };
                let line = row.position().map_or(0, |p| p.line() as usize);
                if row.len() == 1 && row[0].is_empty() {
                    continue;
                }
                if row.len() != t.columns.len() {
                    let msg = format!("{} fields, expected {} ({})", row.len(), t.columns.len(), t.columns.join(", "));
                    bad(&mut t, line, msg)?;
                    continue;
                }
                let fields = t.columns.iter().zip(row.iter()).map(|(c, v)| (c.clone(), Value::String(v.to_string()))).collect();
                t.records.push(Record { line, fields });
            }
        }
        Format::Jsonl => {
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                match serde_json::from_str::<Value>(line) {
                    Ok(Value::Object(fields)) => {
                        note_columns(&mut t.columns, &fields);
                        t.records.push(Record { line: i + 1, fields });
                    }
                    Ok(other) => bad(&mut t, i + 1, format!("expected a JSON object, found {}", kind(&other)))?,
                    Err(e) => bad(&mut t, i + 1, format!("not valid JSON: {e}"))?,
                }
            }
        }
        Format::Json => {
            let v: Value = serde_json::from_str(&text).map_err(|e| Error::file(path, format!("not valid JSON: {e}")))?;
            let Value::Array(items) = v else {
                return Err(Error::file(path, format!("expected a JSON array of records, found {}", kind(&v))));
            };
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::Object(fields) => {
                        note_columns(&mut t.columns, &fields);
                        t.records.push(Record { line: i + 1, fields });
                    }
                    other => bad(&mut t, i + 1, format!("expected a JSON object, found {}", kind(&other)))?,
                }
            }
        }
        Format::Lines => {
            let re = opts.line_regex.as_ref().ok_or_else(|| Error::file(path, "plain text lines need --line-regex with named groups, e.g. '^(?P<label>\\S+) (?P<text>.*)$'"))?;
            t.columns = re.capture_names().flatten().map(str::to_string).collect();
            if t.columns.is_empty() {
                return Err(Error::Invalid(format!("--line-regex `{re}` has no named groups (?P<name>...)")));
            }
            for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                match re.captures(line) {
                    Some(c) => {
                        let fields = t.columns.iter().map(|n| (n.clone(), Value::String(c.name(n).map_or("", |m| m.as_str()).to_string()))).collect();
                        t.records.push(Record { line: i + 1, fields });
                    }
                    None => bad(&mut t, i + 1, format!("does not match --line-regex `{re}`"))?,
                }
            }
        }
    }
    Ok(t)
}

fn note_columns(columns: &mut Vec<String>, fields: &Map<String, Value>) {
    for k in fields.keys() {
        if !columns.contains(k) {
            columns.push(k.clone());
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The file's text without a UTF-8 byte-order mark; invalid UTF-8 is an error naming the line.
fn decode(path: &Path, bytes: &[u8], encoding: Encoding) -> Result<String> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match encoding {
        Encoding::Latin1 => Ok(bytes.iter().map(|&b| b as char).collect()),
        Encoding::Utf8 => String::from_utf8(bytes.to_vec()).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
            Error::data(path, line, format!("not valid UTF-8 (byte 0x{:02X} at offset {at}); give --encoding latin-1 if the file is Latin-1", bytes[at]))
        }),
    }
}
