//! The one error type for a bad configuration file, so every such error names the file,
//! the key and what was expected, and maps to exit code 2.

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used, with enough context to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, where the parser knows it.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `source.tables[1]`; empty for the file as a whole.
    pub key: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(file: &Path, key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            key: key.into(),
            problem: problem.into(),
        }
    }

    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ", key {}", self.key)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for ConfigError {}

/// Turns a toml/serde error into a [`ConfigError`] with the key path and the line.
pub(crate) fn from_toml(
    file: &Path,
    text: &str,
    err: serde_path_to_error::Error<toml::de::Error>,
) -> ConfigError {
    let path = err.path().to_string();
    let inner = err.inner();
    let line = inner.span().map(|span| line_of(text, span.start));
    let parent = if path == "." { String::new() } else { path };
    let (key, problem) = explain(&parent, inner.message());
    ConfigError::new(file, key, problem).at_line(line)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn join(parent: &str, child: &str) -> String {
    if parent == child || parent.ends_with(&format!(".{child}")) {
        parent.to_string()
    } else if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// Rewrites serde's wording into operator words, and moves the offending field name
/// (which serde puts in the message) into the key path.
fn explain(parent: &str, message: &str) -> (String, String) {
    let message = message.trim();
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return (join(parent, field), "required key is missing".to_string());
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once("`, expected ") {
            return (
                join(parent, field),
                format!(
                    "unknown key, expected {}",
                    expected.replace("one of ", "one of: ")
                ),
            );
        }
        if let Some((field, _)) = rest.split_once("`, there are no fields") {
            return (
                join(parent, field),
                "unknown key, this table takes no keys".into(),
            );
        }
    }
    let mut problem = message.to_string();
    for (from, to) in [
        ("expected u16", "expected an integer (0-65535)"),
        ("expected u32", "expected an integer"),
        ("expected u64", "expected an integer"),
        ("expected usize", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected a sequence", "expected an array"),
        ("expected a boolean", "expected true or false"),
        ("expected struct", "expected a table"),
    ] {
        problem = problem.replace(from, to);
    }
    (parent.to_string(), problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_field_names_the_full_key() {
        let (key, problem) = explain("source", "missing field `dbname`");
        assert_eq!(key, "source.dbname");
        assert_eq!(problem, "required key is missing");
    }

    #[test]
    fn unknown_field_names_the_full_key() {
        let (key, problem) = explain(
            "remote",
            "unknown field `hots`, expected one of `host`, `port`",
        );
        assert_eq!(key, "remote.hots");
        assert_eq!(problem, "unknown key, expected one of: `host`, `port`");
    }

    #[test]
    fn display_has_file_line_and_key() {
        let err = ConfigError::new(Path::new("/etc/x.toml"), "a.b", "bad").at_line(Some(3));
        assert_eq!(err.to_string(), "config /etc/x.toml, line 3, key a.b: bad");
    }
}
