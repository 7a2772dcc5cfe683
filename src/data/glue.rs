//! GLUE tasks: what each of the nine tasks is (label set, metric, files, default recipe) and readers
//! for the TSV files in the layout the GLUE download script produces. Label sets are fixed per task,
//! as in run_glue.py, never inferred from the data. Columns are found by header name, so a reader
//! serves train, dev and the unlabeled test files of the same task.
use crate::data::tsv::{self, Table};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Cola,
    Sst2,
    Mrpc,
    Stsb,
    Qqp,
    Mnli,
    Qnli,
    Rte,
    Wnli,
}

/// What a labelled example asks the model for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    Class(i64),
    Score(f32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The `index`/`id` column where the file has one (test files), else the 0-based row number.
    pub id: String,
    pub text_a: String,
    pub text_b: Option<String>,
    pub target: Option<Target>,
}

/// An evaluation split: its file stem and the suffix its metric keys get (`_mm` for MNLI mismatched).
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub file: &'static str,
    pub key_suffix: &'static str,
    pub test_file: &'static str,
    pub predict_name: &'static str,
}

/// Where a column lives: by header name, or by position in a header-less file (CoLA train/dev).
#[derive(Debug, Clone, Copy)]
enum Col {
    Name(&'static str),
    Index(usize),
}

impl FromStr for Task {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let norm: String = s.to_ascii_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        Ok(match norm.as_str() {
            "cola" => Task::Cola,
            "sst2" => Task::Sst2,
            "mrpc" => Task::Mrpc,
            "stsb" => Task::Stsb,
            "qqp" => Task::Qqp,
            "mnli" => Task::Mnli,
            "qnli" => Task::Qnli,
            "rte" => Task::Rte,
            "wnli" => Task::Wnli,
            _ => return Err(Error::UnknownTask(s.to_string())),
        })
    }
}

impl Task {
    pub const ALL: [Task; 9] =
        [Task::Cola, Task::Sst2, Task::Mrpc, Task::Stsb, Task::Qqp, Task::Mnli, Task::Qnli, Task::Rte, Task::Wnli];

    /// run_glue.py's task name (`cola`, `sst2`, `stsb`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Task::Cola => "cola",
            Task::Sst2 => "sst2",
            Task::Mrpc => "mrpc",
            Task::Stsb => "stsb",
            Task::Qqp => "qqp",
            Task::Mnli => "mnli",
            Task::Qnli => "qnli",
            Task::Rte => "rte",
            Task::Wnli => "wnli",
        }
    }

    /// The task's folder name in the GLUE download layout.
    pub fn dir_name(self) -> &'static str {
        match self {
            Task::Cola => "CoLA",
            Task::Sst2 => "SST-2",
            Task::Mrpc => "MRPC",
            Task::Stsb => "STS-B",
            Task::Qqp => "QQP",
            Task::Mnli => "MNLI",
            Task::Qnli => "QNLI",
            Task::Rte => "RTE",
            Task::Wnli => "WNLI",
        }
    }

    /// Label names in id order (the `datasets` GLUE order run_glue.py uses); `None` for STS-B regression.
    pub fn labels(self) -> Option<&'static [&'static str]> {
        match self {
            Task::Stsb => None,
            Task::Mnli => Some(&["entailment", "neutral", "contradiction"]),
            Task::Qnli | Task::Rte => Some(&["entailment", "not_entailment"]),
            Task::Cola | Task::Sst2 | Task::Mrpc | Task::Qqp | Task::Wnli => Some(&["0", "1"]),
        }
    }

    pub fn is_regression(self) -> bool {
        self.labels().is_none()
    }

    /// `num_labels` of the classification head (1 means regression).
    pub fn num_labels(self) -> i64 {
        self.labels().map_or(1, |l| l.len() as i64)
    }

    /// Epochs of run_glue.py's README recipe: 5 for MRPC and WNLI, 3 for the rest.
    pub fn default_epochs(self) -> f64 {
        match self {
            Task::Mrpc | Task::Wnli => 5.0,
            _ => 3.0,
        }
    }

    pub fn eval_splits(self) -> &'static [Split] {
        const DEV: &[Split] = &[Split { file: "dev", key_suffix: "", test_file: "test", predict_name: "" }];
        const MNLI: &[Split] = &[
            Split { file: "dev_matched", key_suffix: "", test_file: "test_matched", predict_name: "" },
            Split { file: "dev_mismatched", key_suffix: "_mm", test_file: "test_mismatched", predict_name: "-mm" },
        ];
        match self {
            Task::Mnli => MNLI,
            _ => DEV,
        }
    }

    /// (text_a, text_b, label) columns of the train/dev files.
    fn columns(self) -> (Col, Option<Col>, Col) {
        use Col::*;
        match self {
            Task::Cola => (Index(3), None, Index(1)),
            Task::Sst2 => (Name("sentence"), None, Name("label")),
            Task::Mrpc => (Name("#1 String"), Some(Name("#2 String")), Name("Quality")),
            Task::Stsb => (Name("sentence1"), Some(Name("sentence2")), Name("score")),
            Task::Qqp => (Name("question1"), Some(Name("question2")), Name("is_duplicate")),
            Task::Mnli => (Name("sentence1"), Some(Name("sentence2")), Name("gold_label")),
            Task::Qnli => (Name("question"), Some(Name("sentence")), Name("label")),
            Task::Rte | Task::Wnli => (Name("sentence1"), Some(Name("sentence2")), Name("label")),
        }
    }

    /// Whether `data_dir` holds this task's training and evaluation files.
    pub fn has_data(self, data_dir: &Path) -> bool {
        let dir = data_dir.join(self.dir_name());
        ["train"].iter().chain(self.eval_splits().iter().map(|s| &s.file)).all(|f| dir.join(format!("{f}.tsv")).is_file())
    }

    pub fn task_dir(self, data_dir: &Path) -> PathBuf {
        let dir = data_dir.join(self.dir_name());
        // Accept either the GLUE root or the task folder itself.
        if !dir.is_dir() && data_dir.join("train.tsv").is_file() {
            return data_dir.to_path_buf();
        }
        dir
    }
}

/// Reads a labelled split (`train.tsv`, `dev.tsv`, ...): every row must carry a valid label.
pub fn read_labelled(task: Task, path: &Path) -> Result<Vec<Example>> {
    read(task, path, true)
}

/// Reads an unlabeled GLUE `test*.tsv` (header row, `index`/`id` column, no label).
pub fn read_unlabelled(task: Task, path: &Path) -> Result<Vec<Example>> {
    read(task, path, false)
}

fn read(task: Task, path: &Path, labelled: bool) -> Result<Vec<Example>> {
    let (a, b, label) = task.columns();
    // CoLA's train/dev files have no header; its test file has one (`index`, `sentence`).
    let header = !(labelled && matches!(a, Col::Index(_)));
    let table = tsv::read(path, header)?;
    let (a, b) = if labelled || !matches!(a, Col::Index(_)) { (a, b) } else { (Col::Name("sentence"), None) };
    let a = resolve(&table, a)?;
    let b = b.map(|c| resolve(&table, c)).transpose()?;
    let label = if labelled { Some(resolve(&table, label)?) } else { None };
    let id_col = ["index", "id"].iter().find_map(|n| table.column(n));
    if table.rows.is_empty() {
        return Err(Error::file(path, "no data rows; expected at least one example"));
    }
    let labels = task.labels();
    let mut out = Vec::with_capacity(table.rows.len());
    for (i, row) in table.rows.iter().enumerate() {
        let line = table.line_of(i);
        let target = match label {
            None => None,
            Some(c) => Some(parse_target(labels, &row[c]).map_err(|m| Error::data(path, line, m))?),
        };
        out.push(Example {
            id: id_col.map_or_else(|| i.to_string(), |c| row[c].clone()),
            text_a: row[a].clone(),
            text_b: b.map(|c| row[c].clone()),
            target,
        });
    }
    Ok(out)
}

fn resolve(table: &Table, col: Col) -> Result<usize> {
    match col {
        Col::Index(i) if i < table.width => Ok(i),
        Col::Index(i) => Err(Error::data(&table.path, 1, format!("expected at least {} columns, found {}", i + 1, table.width))),
        Col::Name(n) => table.column(n).ok_or_else(|| {
            Error::data(&table.path, 1, format!("header has no `{n}` column (header: {})", table.header.join(" | ")))
        }),
    }
}

fn parse_target(labels: Option<&[&str]>, raw: &str) -> std::result::Result<Target, String> {
    let raw = raw.trim();
    match labels {
        Some(labels) => labels
            .iter()
            .position(|l| *l == raw)
            .map(|i| Target::Class(i as i64))
            .ok_or_else(|| format!("unknown label `{raw}`; expected one of {labels:?}")),
        None => match raw.parse::<f32>() {
            Ok(v) if v.is_finite() => Ok(Target::Score(v)),
            _ => Err(format!("label `{raw}` is not a finite number (expected a similarity score)")),
        },
    }
}
