//! A long-lived `psql` session driven over pipes. The sender holds one open to keep a
//! REPEATABLE READ snapshot exported while `pg_dump` reads from it (guarantee 5).

use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Stdio};

use anyhow::{bail, Context};
use serde::de::DeserializeOwned;

use super::child::PsqlChild;
use super::Psql;
use crate::cause::{self, Cause};

/// Marks the end of one statement's output.
const END_MARKER: &str = "__PGFERRY_END_OF_OUTPUT__";

/// Dropped without [`Session::close`], psql is stopped and the transaction rolls back.
pub struct Session {
    psql: PsqlChild,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    pub fn open(psql: &Psql) -> anyhow::Result<Session> {
        Session::start(psql, &[])
    }

    /// A session on a logical replication connection (`replication=database`): it takes
    /// replication commands such as `CREATE_REPLICATION_SLOT` besides SQL. The database and
    /// the rest come from the connection's environment, as for any other session.
    pub fn open_replication(psql: &Psql) -> anyhow::Result<Session> {
        Session::start(psql, &["-d", "replication=database"])
    }

    fn start(psql: &Psql, args: &[&str]) -> anyhow::Result<Session> {
        let args: Vec<&str> = ["-A", "-t"].iter().chain(args).copied().collect();
        let (psql, stdout) = PsqlChild::spawn(psql, &args, Stdio::piped(), 8 * 1024)?;
        let stdout = stdout.context("psql has no stdout pipe")?;
        Ok(Session {
            psql,
            stdout: BufReader::new(stdout),
        })
    }

    /// Runs one SQL statement (without the final `;`) and returns its output lines joined.
    pub fn query(&mut self, sql: &str) -> anyhow::Result<String> {
        let script = format!("{sql};\n\\echo {END_MARKER}\n");
        if self
            .psql
            .write(script.as_bytes())
            .and_then(|()| self.psql.flush())
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
            .with_context(|| format!("read the answer of {} as JSON", self.psql.target))
    }

    fn died(&mut self) -> anyhow::Error {
        let (status, tail) = match self.psql.wait() {
            Ok(ended) => (ended.status.to_string(), ended.stderr),
            Err(err) => (err.to_string(), String::new()),
        };
        cause::tag(
            anyhow::anyhow!(
                "psql session with {} ended ({status}): {tail}",
                self.psql.target
            ),
            Cause::Database,
        )
    }

    /// Ends the session cleanly, committing whatever is open.
    pub fn close(mut self) -> anyhow::Result<()> {
        let _ = self.psql.write(b"COMMIT;\n\\q\n");
        let _ = self.psql.close_input();
        let ended = self.psql.wait().context("wait for psql")?;
        if !ended.status.success() {
            bail!(
                "psql session with {} failed ({}): {}",
                self.psql.target,
                ended.status,
                ended.stderr
            );
        }
        Ok(())
    }
}
