//! A `psql` child driven through its stdin: the receiver's load transaction and the
//! sender's snapshot session each hold one open. Its stderr is drained as it runs, so a
//! failure can say what psql said. Dropped before [`PsqlChild::wait`], it is killed: the
//! open transaction rolls back at once, not when psql gets to the end of its input.

use std::io::{self, BufWriter, Write};
use std::process::{Child, ChildStdin, ChildStdout, ExitStatus, Stdio};

use anyhow::Context;

use super::Psql;
use crate::process::StderrTail;

pub struct PsqlChild {
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    stderr: StderrTail,
    /// The database, as error messages name it.
    pub target: String,
    waited: bool,
}

/// How a psql child ended: its exit status and the end of its stderr.
pub struct Ended {
    pub status: ExitStatus,
    pub stderr: String,
}

impl PsqlChild {
    /// Starts psql with `args` after the usual ones, input buffered by `buffer` bytes. Its
    /// stdout is returned when `stdout` is [`Stdio::piped`].
    pub fn spawn(
        psql: &Psql,
        args: &[&str],
        stdout: Stdio,
        buffer: usize,
    ) -> anyhow::Result<(PsqlChild, Option<ChildStdout>)> {
        let target = psql.connection.describe();
        let mut child = psql
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start psql for {target}"))?;
        let stdin = child.stdin.take().context("psql has no stdin pipe")?;
        let stderr = child.stderr.take().context("psql has no stderr pipe")?;
        let stdout = child.stdout.take();
        let child = PsqlChild {
            child,
            stdin: Some(BufWriter::with_capacity(buffer, stdin)),
            stderr: StderrTail::drain(stderr),
            target,
            waited: false,
        };
        Ok((child, stdout))
    }

    /// Sends `bytes`; an error means psql stopped reading ([`PsqlChild::wait`] says why).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(bytes),
            None => Err(io::Error::other("psql input is closed")),
        }
    }

    /// Sends what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(stdin) => stdin.flush(),
            None => Err(io::Error::other("psql input is closed")),
        }
    }

    /// Sends what is buffered and closes psql's input: it runs what it has read and exits.
    pub fn close_input(&mut self) -> io::Result<()> {
        match self.stdin.take() {
            Some(stdin) => stdin.into_inner().map(drop).map_err(|e| e.into_error()),
            None => Ok(()),
        }
    }

    /// Closes psql's input without sending what is buffered (a `BufWriter` dropped would
    /// try, and wait for a psql that may not read).
    fn discard_input(&mut self) {
        if let Some(stdin) = self.stdin.take() {
            drop(stdin.into_parts());
        }
    }

    /// Closes psql's input (what is still buffered is dropped) and waits for it to exit.
    pub fn wait(&mut self) -> io::Result<Ended> {
        self.discard_input();
        let status = self.child.wait()?;
        self.waited = true;
        Ok(Ended {
            status,
            stderr: self.stderr.finish().trim().to_string(),
        })
    }
}

impl Drop for PsqlChild {
    fn drop(&mut self) {
        if !self.waited {
            // Abandoned: stop psql so its open transaction rolls back now.
            let _ = self.child.kill();
            self.discard_input();
            let _ = self.child.wait();
        }
    }
}
