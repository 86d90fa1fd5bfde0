//! Settings of both sides: TOML parsed into typed structs with `deny_unknown_fields`, then
//! validated. `parse(text, path)` is separate from `read(path)` so tests need no files.

/// Deserializes `FromStr` values from TOML strings, keeping the parser's message. Defined
/// before the modules that use it.
macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <String as serde::Deserialize>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

pub mod alerts;
pub mod bundle_keys;
pub mod connection;
mod error;
pub mod metrics;
pub mod names;
pub mod receiver;
pub mod sender;
pub mod store;
pub mod values;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use alerts::{AlertSettings, SmtpSecurity};
pub use connection::Connection;
pub use error::ConfigError;
pub use receiver::ReceiverSettings;
pub use sender::{ChangeSource, SenderSettings};
pub use values::{Duration, Schedule, Size};

/// Where a config file lives when `-c` is not given: `$PGFERRY_CONFIG`, else this default.
pub fn default_path(fallback: &str) -> PathBuf {
    std::env::var_os("PGFERRY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(fallback))
}

fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|err| ConfigError::new(path, "", format!("cannot read the file: {err}")))
}

fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| error::from_toml(path, text, err))
}

/// Finds the line of `key = ` inside `[section]`, for errors found after parsing.
fn line_of_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut in_section = section.is_empty();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            let header = trimmed.trim_matches(|c| c == '[' || c == ']').trim();
            in_section = header == section;
            continue;
        }
        if in_section {
            if let Some((name, _)) = trimmed.split_once('=') {
                if name.trim() == key {
                    return Some(index + 1);
                }
            }
        }
    }
    None
}

/// Builds the validation error for `section.key`, with the line when it can be found.
fn invalid(
    path: &Path,
    text: &str,
    section: &str,
    key: &str,
    problem: impl Into<String>,
) -> ConfigError {
    let full = if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    };
    ConfigError::new(path, full, problem).at_line(line_of_key(text, section, key))
}

impl SenderSettings {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut settings: SenderSettings = parse_toml(text, path)?;
        settings.validate(text, path)?;
        settings.path = path.to_path_buf();
        Ok(settings)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        if self.source.password.is_some() {
            return Err(password_refused(path, text, "source"));
        }
        if self.source.dbname.is_none() {
            return Err(invalid(
                path,
                text,
                "source",
                "dbname",
                "required key is missing, expected the database name",
            ));
        }
        if self.source.tables.is_empty() {
            return Err(invalid(
                path,
                text,
                "source",
                "tables",
                "expected at least one table name or pattern",
            ));
        }
        for (index, table) in self.partial.tables.iter().enumerate() {
            if table.table.is_glob() {
                return Err(ConfigError::new(
                    path,
                    format!("partial.tables[{index}].table"),
                    format!(
                        "{:?} is a pattern, expected one table name",
                        table.table.to_string()
                    ),
                ));
            }
            if table.changed_at.trim().is_empty() {
                return Err(ConfigError::new(
                    path,
                    format!("partial.tables[{index}].changed_at"),
                    "expected a column name",
                ));
            }
        }
        if self.partial.source == ChangeSource::Logical {
            if !self.partial.tables.is_empty() {
                return Err(ConfigError::new(
                    path,
                    "partial.tables",
                    "with source = \"logical\" every table of source.tables is captured from the slot; remove the [[partial.tables]] entries",
                ));
            }
            for (key, name) in [
                ("slot", &self.partial.slot),
                ("publication", &self.partial.publication),
            ] {
                // PostgreSQL's rule for slot names, kept for the publication too so both
                // need no quoting in messages and commands an operator types.
                let valid = !name.is_empty()
                    && name.len() <= 63
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid {
                    return Err(invalid(
                        path,
                        text,
                        "partial",
                        key,
                        "expected 1 to 63 lowercase letters, digits or underscores",
                    ));
                }
            }
        }
        if let Some(window) = self.partial.window {
            if window.0.is_zero() {
                return Err(invalid(
                    path,
                    text,
                    "partial",
                    "window",
                    "expected a duration above zero",
                ));
            }
        }
        check_file_set_names(path, self.files.iter().map(|f| f.name.as_str()))?;
        for (index, set) in self.files.iter().enumerate() {
            for (pattern_index, pattern) in set.include.iter().enumerate() {
                if let Err(err) = globset::Glob::new(pattern) {
                    return Err(ConfigError::new(
                        path,
                        format!("files[{index}].include[{pattern_index}]"),
                        format!("invalid glob {pattern:?}: {}", err.kind()),
                    ));
                }
            }
        }
        if matches!(&self.remote, sender::Remote::Sftp(sftp) if sftp.dir.trim().is_empty()) {
            return Err(invalid(
                path,
                text,
                "remote",
                "dir",
                "expected the inbox directory on the receiver",
            ));
        }
        validate_alerts(&self.alerts, path, text)
    }
}

impl ReceiverSettings {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut settings: ReceiverSettings = parse_toml(text, path)?;
        settings.validate(text, path)?;
        settings.path = path.to_path_buf();
        Ok(settings)
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        if self.target.password.is_some() {
            return Err(password_refused(path, text, "target"));
        }
        if self.target.dbname.is_none() {
            return Err(invalid(
                path,
                text,
                "target",
                "dbname",
                "required key is missing, expected the database name",
            ));
        }
        check_file_set_names(path, self.files.iter().map(|f| f.name.as_str()))?;
        if let Some(post) = &self.postprocess {
            if post.command.is_empty() || post.command[0].trim().is_empty() {
                return Err(invalid(path, text, "postprocess", "command", "expected a program and its arguments, like [\"/usr/local/bin/refresh\", \"--all\"]"));
            }
        }
        validate_alerts(&self.alerts, path, text)
    }
}

fn password_refused(path: &Path, text: &str, section: &str) -> ConfigError {
    invalid(
        path,
        text,
        section,
        "password",
        "passwords never go into the config file; use PGPASSFILE, ~/.pgpass or PGPASSWORD",
    )
}

fn check_file_set_names<'a>(
    path: &Path,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let mut seen = HashSet::new();
    for (index, name) in names.enumerate() {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && name != "."
            && name != "..";
        if !valid {
            return Err(ConfigError::new(
                path,
                format!("files[{index}].name"),
                format!(
                    "invalid file set name {name:?}, expected letters, digits, '_', '-' or '.'"
                ),
            ));
        }
        if !seen.insert(name) {
            return Err(ConfigError::new(
                path,
                format!("files[{index}].name"),
                format!("file set {name:?} is defined twice, expected unique names"),
            ));
        }
    }
    Ok(())
}

fn validate_alerts(alerts: &AlertSettings, path: &Path, text: &str) -> Result<(), ConfigError> {
    if alerts.to.is_empty() {
        return Err(invalid(
            path,
            text,
            "alerts",
            "to",
            "expected at least one address",
        ));
    }
    if alerts.password_env.is_some() && alerts.username.is_none() {
        return Err(invalid(
            path,
            text,
            "alerts",
            "password_env",
            "needs alerts.username as well",
        ));
    }
    let addresses = std::iter::once(("from", alerts.from.as_str()))
        .chain(alerts.to.iter().map(|a| ("to", a.as_str())));
    for (key, address) in addresses {
        if address.parse::<lettre::message::Mailbox>().is_err() {
            return Err(invalid(
                path,
                text,
                "alerts",
                key,
                format!("invalid email address {address:?}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
