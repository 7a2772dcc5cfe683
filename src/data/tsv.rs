//! Strict tab-separated reader: UTF-8 only (a leading BOM is dropped), no quoting (GLUE's files are
//! read with `quotechar=None` by the reference processors), every row exactly as wide as the first,
//! no blank rows. Each failure names the file and the 1-based line.
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Table {
    pub path: PathBuf,
    /// Column names; empty for a header-less file.
    pub header: Vec<String>,
    pub width: usize,
    pub rows: Vec<Vec<String>>,
    first_data_line: usize,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// The 1-based file line of data row `i`.
    pub fn line_of(&self, i: usize) -> usize {
        self.first_data_line + i
    }
}

pub fn read(path: &Path, header: bool) -> Result<Table> {
    let bytes = crate::io::read(path)?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        Error::data(path, line, format!("invalid UTF-8 at byte {}; expected UTF-8 text", e.valid_up_to()))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.strip_suffix('\n').unwrap_or(text);
    if text.is_empty() {
        return Err(Error::file(path, "empty file; expected a header row and data rows"));
    }
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate();
    let mut table = Table { path: path.into(), header: vec![], width: 0, rows: vec![], first_data_line: 1 };
    if header {
        let (_, h) = lines.next().expect("non-empty text has a first line");
        table.header = h.split('\t').map(str::to_string).collect();
        table.width = table.header.len();
        table.first_data_line = 2;
    }
    for (i, line) in lines {
        if line.is_empty() {
            return Err(Error::data(path, i + 1, "blank line; expected a data row"));
        }
        let row: Vec<String> = line.split('\t').map(str::to_string).collect();
        if table.width == 0 {
            table.width = row.len();
        }
        if row.len() != table.width {
            return Err(Error::data(
                path,
                i + 1,
                format!("found {} columns, expected {}", row.len(), table.width),
            ));
        }
        table.rows.push(row);
    }
    Ok(table)
}
