//! Files of JSON lines, as `submit` and `assess` read them: one message a line in the
//! protobuf JSON mapping, blank lines skipped, every bad line named with its number.

use std::{
    io::{BufRead, BufReader},
    path::Path,
};

use anyhow::Context;
use serde::de::DeserializeOwned;

/// A line that is not the message expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses JSON lines of `T`, which a bad line's reason calls `what` ("a DossierEvent");
/// blank lines are skipped. Returns the messages with their line numbers, or every bad line.
pub fn parse<T: DeserializeOwned>(
    input: impl BufRead,
    what: &str,
) -> Result<Vec<(usize, T)>, Vec<BadLine>> {
    let mut parsed = Vec::new();
    let mut bad = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line_no = index + 1;
        match line {
            Err(e) => bad.push(BadLine {
                line: line_no,
                reason: format!("cannot read: {e}"),
            }),
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => match serde_json::from_str::<T>(&text) {
                Ok(message) => parsed.push((line_no, message)),
                Err(e) => bad.push(BadLine {
                    line: line_no,
                    reason: format!("not {what} in JSON: {e}"),
                }),
            },
        }
    }
    if bad.is_empty() { Ok(parsed) } else { Err(bad) }
}

/// The lines of `file`, or of standard input for `-`.
pub fn open(file: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if file.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    Ok(Box::new(BufReader::new(f)))
}
