//! One-shot `psql` queries that return JSON, so names with any characters come back intact.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::cause::{Cause, CauseExt};
use crate::process;
use crate::settings::Connection;

/// Runs `psql` against one database.
#[derive(Debug, Clone)]
pub struct Psql {
    pub connection: Connection,
    pub program: PathBuf,
}

impl Psql {
    pub fn new(connection: Connection) -> Psql {
        Psql {
            connection,
            program: super::programs::psql().to_path_buf(),
        }
    }

    /// A `psql` command with the connection in its environment, no psqlrc, stop on error.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password"]);
        apply_connection(&mut cmd, &self.connection);
        cmd
    }

    /// Runs one statement and returns its single text value (`-A -t`).
    pub fn scalar(&self, sql: &str) -> anyhow::Result<String> {
        let out = process::output(self.command().args(["-A", "-t", "-c", sql]))
            .with_context(|| format!("query {}", self.connection.describe()))
            .cause(Cause::Database)?;
        Ok(String::from_utf8_lossy(&out)
            .trim_end_matches('\n')
            .to_string())
    }

    /// Runs a query whose single value is JSON (wrap it in `json_agg`/`row_to_json`).
    pub fn json<T: DeserializeOwned>(&self, sql: &str) -> anyhow::Result<T> {
        let text = self.scalar(sql)?;
        let text = if text.trim().is_empty() {
            "null"
        } else {
            text.trim()
        };
        serde_json::from_str(text)
            .with_context(|| format!("read the answer of {} as JSON", self.connection.describe()))
    }

    /// The server's version number, like 150008.
    pub fn server_version_num(&self) -> anyhow::Result<u32> {
        let text = self.scalar("SHOW server_version_num")?;
        text.trim()
            .parse()
            .with_context(|| format!("unexpected server_version_num {text:?}"))
    }
}

/// Puts the libpq fields into `cmd`'s environment and bounds the connect time, so an
/// unreachable server fails in seconds instead of hanging a job.
pub fn apply_connection(cmd: &mut Command, connection: &Connection) {
    for (var, value) in &connection.env {
        cmd.env(var, value);
    }
    if !connection
        .env
        .iter()
        .any(|(v, _)| *v == "PGCONNECT_TIMEOUT")
        && std::env::var_os("PGCONNECT_TIMEOUT").is_none()
    {
        cmd.env("PGCONNECT_TIMEOUT", "10");
    }
    if !connection.env.iter().any(|(v, _)| *v == "PGAPPNAME") {
        cmd.env("PGAPPNAME", "pgferry");
    }
}

/// The major version from a `--version` line like `pg_dump (PostgreSQL) 15.8 (Debian ...)`.
pub fn major_version(version_line: &str) -> Option<u32> {
    let after = version_line.split(')').nth(1)?.trim();
    after.split(['.', ' ']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_version_reads_tool_banners() {
        assert_eq!(
            major_version("pg_dump (PostgreSQL) 15.8 (Debian 15.8-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(major_version("psql (PostgreSQL) 16.1"), Some(16));
        assert_eq!(major_version("garbage"), None);
    }
}
