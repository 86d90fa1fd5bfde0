//! A long-lived `psql` session driven over pipes. The sender holds one open to keep a
//! REPEATABLE READ snapshot exported while `pg_dump` reads from it (guarantee 5).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;

use super::Psql;
use crate::cause::{self, Cause};
use crate::process::StderrTail;

/// Marks the end of one statement's output.
const END_MARKER: &str = "__PGFERRY_END_OF_OUTPUT__";

pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: StderrTail,
    target: String,
}

impl Session {
    pub fn open(psql: &Psql) -> anyhow::Result<Session> {
        let target = psql.connection.describe();
        let mut child = psql
            .command()
            .args(["-A", "-t"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start psql for {target}"))?;
        let stdin = child.stdin.take().context("psql has no stdin pipe")?;
        let stdout = child.stdout.take().context("psql has no stdout pipe")?;
        let stderr = child.stderr.take().context("psql has no stderr pipe")?;
        Ok(Session {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr: StderrTail::drain(stderr),
            target,
        })
    }

    /// Runs one SQL statement (without the final `;`) and returns its output lines joined.
    pub fn query(&mut self, sql: &str) -> anyhow::Result<String> {
        let stdin = self.stdin.as_mut().context("the psql session is closed")?;
        let script = format!("{sql};\n\\echo {END_MARKER}\n");
        if stdin
            .write_all(script.as_bytes())
            .and_then(|()| stdin.flush())
            .is_err()
        {
            return Err(self.died());
        }
        let mut output = String::new();
        loop {
            let mut line = String::new();
            let n = self.stdout.read_line(&mut line).context("read from psql")?;
            if n == 0 {
                return Err(self.died());
            }
            if line.trim_end() == END_MARKER {
                return Ok(output.trim_end_matches('\n').to_string());
            }
            output.push_str(&line);
        }
    }

    pub fn json<T: DeserializeOwned>(&mut self, sql: &str) -> anyhow::Result<T> {
        let text = self.query(sql)?;
        let text = if text.trim().is_empty() {
            "null"
        } else {
            text.trim()
        };
        serde_json::from_str(text)
            .with_context(|| format!("read the answer of {} as JSON", self.target))
    }

    fn died(&mut self) -> anyhow::Error {
        self.stdin = None;
        let status = self
            .child
            .wait()
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        let tail = self.stderr.finish();
        cause::tag(
            anyhow::anyhow!(
                "psql session with {} ended ({status}): {}",
                self.target,
                tail.trim()
            ),
            Cause::Database,
        )
    }

    /// Ends the session cleanly, committing whatever is open.
    pub fn close(mut self) -> anyhow::Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"COMMIT;\n\\q\n");
        }
        let status = self.child.wait().context("wait for psql")?;
        let tail = self.stderr.finish();
        if !status.success() {
            bail!(
                "psql session with {} failed ({status}): {}",
                self.target,
                tail.trim()
            );
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            // Closing stdin ends psql, which rolls back the open transaction.
            let _ = self.child.wait();
        }
    }
}
