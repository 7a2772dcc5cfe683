//! Token-classification data (`finetune ner`): CoNLL column files (token first, tag last, any
//! columns between; a blank line ends a sentence; `-DOCSTART-` lines in either form skipped) and
//! HF-style JSON lines (`{"tokens": [...], "ner_tags": [...]}`, tags as strings, or as ids into
//! `--label-list`). Tags are converted to IOB2 here — IOB1's `I-` that begins an entity becomes
//! `B-`, BIOES's `S-`/`E-` become `B-`/`I-` — so the files stay untouched and every later stage
//! sees one scheme. Errors name the file and line.
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;
use std::str::FromStr;

/// One sentence: its words, their tags, and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Sentence {
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
    pub line: usize,
}

/// The tag scheme of a file (`--tag-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagScheme {
    Iob1,
    Iob2,
    Bioes,
    /// BIOES if any `E-`/`S-` tag occurs, IOB1 if an `I-` begins an entity, else IOB2.
    Auto,
}

impl FromStr for TagScheme {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_lowercase().as_str() {
            "iob1" => Ok(TagScheme::Iob1),
            "iob2" | "bio" => Ok(TagScheme::Iob2),
            "bioes" | "iobes" => Ok(TagScheme::Bioes),
            "auto" => Ok(TagScheme::Auto),
            _ => Err(Error::Invalid(format!("tag scheme `{s}`; expected iob1, iob2, bioes or auto"))),
        }
    }
}

/// How a file is read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadOptions {
    pub scheme: TagScheme,
    /// Label names by id, for JSON files whose tags are ids.
    pub label_list: Option<Vec<String>>,
    pub text_column_name: String,
    pub label_column_name: String,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { scheme: TagScheme::Auto, label_list: None, text_column_name: "tokens".into(), label_column_name: "ner_tags".into() }
    }
}

/// Reads a CoNLL or JSON lines file (by extension: `.json` / `.jsonl` are JSON lines) and converts
/// its tags to IOB2. Returns the sentences and the scheme the file was read as.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<(Vec<Sentence>, TagScheme)> {
    let bytes = crate::io::read(path)?;
    let json = is_json_lines(path);
    let mut sentences = if json { read_json_lines(path, &bytes, opts)? } else { read_columns(path, &bytes)? };
    for s in &sentences {
        for (i, t) in s.tags.iter().enumerate() {
            if !is_tag(t) {
                return Err(Error::data(path, s.line + if json { 0 } else { i }, format!("tag `{t}` of `{}`: expected O or B-/I-/E-/S- and a type", s.tokens[i])));
            }
        }
    }
    if sentences.is_empty() {
        return Err(Error::file(path, "no sentences"));
    }
    let scheme = match opts.scheme {
        TagScheme::Auto => detect(&sentences),
        s => s,
    };
    for s in &mut sentences {
        s.tags = to_iob2(&s.tags, scheme);
    }
    Ok((sentences, scheme))
}

/// Whether `read` takes `path` as JSON lines (by its extension) rather than CoNLL columns.
fn is_json_lines(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "json" | "jsonl"))
}

fn is_tag(t: &str) -> bool {
    t == "O" || matches!(t.split_once('-'), Some((p, kind)) if matches!(p, "B" | "I" | "E" | "S") && !kind.is_empty())
}

/// Lines as UTF-8 text (a trailing `\r` dropped), each with its 1-based number.
fn lines<'a>(path: &'a Path, bytes: &'a [u8]) -> impl Iterator<Item = Result<(usize, &'a str)>> + 'a {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    bytes.split(|&b| b == b'\n').enumerate().map(move |(i, l)| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        std::str::from_utf8(l).map(|s| (i + 1, s)).map_err(|e| Error::data(path, i + 1, format!("not UTF-8 (byte {} of the line)", e.valid_up_to() + 1)))
    })
}

fn read_columns(path: &Path, bytes: &[u8]) -> Result<Vec<Sentence>> {
    let mut out = Vec::new();
    let mut cur = Sentence { tokens: vec![], tags: vec![], line: 0 };
    for line in lines(path, bytes) {
        let (n, line) = line?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || cols[0] == "-DOCSTART-" {
            if !cur.tokens.is_empty() {
                out.push(std::mem::replace(&mut cur, Sentence { tokens: vec![], tags: vec![], line: 0 }));
            }
            continue;
        }
        if cols.len() < 2 {
            return Err(Error::data(path, n, format!("`{line}`: expected a token and its tag (token first, tag last)")));
        }
        if cur.tokens.is_empty() {
            cur.line = n;
        }
        cur.tokens.push(cols[0].to_string());
        cur.tags.push(cols[cols.len() - 1].to_string());
    }
    if !cur.tokens.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn read_json_lines(path: &Path, bytes: &[u8], opts: &ReadOptions) -> Result<Vec<Sentence>> {
    let mut out = Vec::new();
    for line in lines(path, bytes) {
        let (n, line) = line?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| Error::data(path, n, m);
        let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let field = |k: &str| v.get(k).and_then(Value::as_array).ok_or_else(|| bad(format!("expected an array field `{k}`")));
        let tokens = field(&opts.text_column_name)?
            .iter()
            .map(|t| t.as_str().map(str::to_string).ok_or_else(|| bad(format!("`{}`: expected strings, found {t}", opts.text_column_name))))
            .collect::<Result<Vec<_>>>()?;
        let tags = field(&opts.label_column_name)?
            .iter()
            .map(|t| match (t, &opts.label_list) {
                (Value::String(s), _) => Ok(s.clone()),
                (Value::Number(k), Some(list)) => k.as_u64().and_then(|k| list.get(k as usize)).cloned().ok_or_else(|| bad(format!("tag id {k} is outside --label-list ({} labels)", list.len()))),
                (Value::Number(_), None) => Err(bad("tags are ids: give their names in order with --label-list".into())),
                _ => Err(bad(format!("`{}`: expected tag strings or ids, found {t}", opts.label_column_name))),
            })
            .collect::<Result<Vec<_>>>()?;
        if tokens.len() != tags.len() {
            return Err(bad(format!("{} tokens but {} tags", tokens.len(), tags.len())));
        }
        if !tokens.is_empty() {
            out.push(Sentence { tokens, tags, line: n });
        }
    }
    Ok(out)
}

fn split(tag: &str) -> (&str, &str) {
    tag.split_once('-').unwrap_or((tag, ""))
}

/// The scheme a file's tags follow (see `TagScheme::Auto`).
pub fn detect(sentences: &[Sentence]) -> TagScheme {
    let tags = || sentences.iter().flat_map(|s| s.tags.iter());
    if tags().any(|t| matches!(split(t).0, "E" | "S")) {
        return TagScheme::Bioes;
    }
    let iob1 = sentences.iter().any(|s| {
        s.tags.iter().enumerate().any(|(i, t)| {
            let (p, kind) = split(t);
            p == "I" && (i == 0 || s.tags[i - 1] == "O" || split(&s.tags[i - 1]).1 != kind)
        })
    });
    if iob1 {
        TagScheme::Iob1
    } else {
        TagScheme::Iob2
    }
}

/// One sentence's tags in IOB2.
pub fn to_iob2(tags: &[String], scheme: TagScheme) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tags.len());
    for (i, t) in tags.iter().enumerate() {
        let (p, kind) = split(t);
        let begins = i == 0 || tags[i - 1] == "O" || split(&tags[i - 1]).1 != kind;
        out.push(match (scheme, p) {
            (TagScheme::Iob1, "I") if begins => format!("B-{kind}"),
            (TagScheme::Bioes, "S") => format!("B-{kind}"),
            (TagScheme::Bioes, "E") => format!("I-{kind}"),
            _ => t.clone(),
        });
    }
    out
}

/// run_ner's label list: every tag of the training sentences, sorted.
pub fn label_list(sentences: &[Sentence]) -> Vec<String> {
    let set: std::collections::BTreeSet<&String> = sentences.iter().flat_map(|s| s.tags.iter()).collect();
    set.into_iter().cloned().collect()
}

/// Checks every tag of `sentences` is in `labels`, naming the first one that is not.
pub fn check_labels(path: &Path, sentences: &[Sentence], labels: &[String]) -> Result<()> {
    let json = is_json_lines(path);
    for s in sentences {
        if let Some(i) = s.tags.iter().position(|t| !labels.contains(t)) {
            let line = s.line + if json { 0 } else { i };
            return Err(Error::data(path, line, format!("tag `{}` is not among the training labels ({})", s.tags[i], labels.join(", "))));
        }
    }
    Ok(())
}
