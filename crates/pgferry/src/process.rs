//! Runs the external programs pgferry drives (`pg_dump`, `psql`, the post-processing hook)
//! and turns their failures into errors that carry the argv, the status and the tail of
//! stderr. `CommandReader` exposes a child's stdout as `io::Read` while a thread drains its
//! stderr, so a chatty child can never block on a full pipe.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

/// How much of a child's stderr is kept for the error message.
const STDERR_TAIL_LINES: usize = 20;

/// A child process that failed or could not start.
#[derive(Debug, thiserror::Error)]
#[error("{program} failed ({status}){}", tail_suffix(.stderr_tail))]
pub struct CommandError {
    pub program: String,
    pub argv: String,
    pub status: String,
    pub stderr_tail: String,
}

fn tail_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", tail.trim())
    }
}

fn program_name(cmd: &Command) -> String {
    PathBuf::from(cmd.get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The argv for messages and logs. Arguments never carry secrets: connection details go
/// through the environment.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

fn spawn_error(cmd: &Command, err: io::Error) -> CommandError {
    let status = if err.kind() == io::ErrorKind::NotFound {
        "not found on PATH".to_string()
    } else {
        format!("cannot start: {err}")
    };
    CommandError {
        program: program_name(cmd),
        argv: describe(cmd),
        status,
        stderr_tail: String::new(),
    }
}

fn status_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Runs `cmd` to completion and returns its stdout; a non-zero exit is a [`CommandError`].
pub fn output(cmd: &mut Command) -> Result<Vec<u8>, CommandError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|err| spawn_error(cmd, err))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(CommandError {
            program: program_name(cmd),
            argv: describe(cmd),
            status: status_text(out.status),
            stderr_tail: tail_of(&String::from_utf8_lossy(&out.stderr)),
        })
    }
}

fn tail_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join("\n")
}

/// Ends this process with SIGKILL, as a crash would: no destructor, no cleanup. The crash
/// tests reach it through the binaries' fail points.
pub fn kill_self() -> ! {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    std::process::abort()
}

/// Holds this process at a named point until the file `gate` exists, first writing
/// `<gate>.reached`: a test that must act while a job is at that point (between its
/// snapshot and its publish, say) waits for the one and then makes the other. The
/// binaries reach it only through their fail points (`FAILPOINTS=<point>=return(<gate>)`).
pub fn wait_at_gate(gate: Option<String>) {
    let Some(gate) = gate else {
        return;
    };
    let _ = std::fs::write(format!("{gate}.reached"), b"");
    while !std::path::Path::new(&gate).exists() {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The most of one output line kept: a child that prints megabytes without a newline
/// must not make pgferry hold them.
const LINE_LIMIT: usize = 4096;

/// The next line (at most [`LINE_LIMIT`] bytes of it, the rest skipped), or `None` at EOF.
fn read_capped_line(reader: &mut impl io::BufRead) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return any.then_some(line),
        };
        if buf.is_empty() {
            return any.then_some(line);
        }
        any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(end) => (&buf[..end], Some(end + 1)),
            None => (buf, None),
        };
        let room = LINE_LIMIT.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        if done.is_some() {
            return Some(line);
        }
    }
}

/// Drains a child's stderr on a thread, keeping the last lines for error messages.
pub struct StderrTail {
    handle: Option<JoinHandle<String>>,
}

impl StderrTail {
    pub fn drain(stderr: impl Read + Send + 'static) -> StderrTail {
        let handle = std::thread::spawn(move || {
            let mut reader = io::BufReader::new(stderr);
            let mut tail: VecDeque<String> = VecDeque::new();
            let mut report = ErrorReport::default();
            while let Some(line) = read_capped_line(&mut reader) {
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                tracing::debug!(target: "pgferry::child", "{text}");
                report.see(&text);
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(text);
            }
            report.before(tail)
        });
        StderrTail {
            handle: Some(handle),
        }
    }

    /// Waits for the child's stderr to close and returns its last lines.
    pub fn finish(&mut self) -> String {
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// PostgreSQL's report of the first error a child printed: its `ERROR:` line and the
/// `DETAIL:` and `HINT:` lines after it. It says why, and the statement or context that
/// follows can be long enough to push it out of the tail, so it is kept apart and shown first.
#[derive(Default)]
struct ErrorReport {
    lines: Vec<String>,
    /// The lines right after the `ERROR:` line still belong to it.
    open: bool,
}

impl ErrorReport {
    fn see(&mut self, line: &str) {
        if self.lines.is_empty() && line.contains("ERROR:  ") {
            self.lines.push(line.to_string());
            self.open = true;
        } else if self.open && (line.starts_with("DETAIL:  ") || line.starts_with("HINT:  ")) {
            self.lines.push(line.to_string());
        } else {
            self.open = false;
        }
    }

    /// The report, then the tail without the report's lines.
    fn before(self, tail: VecDeque<String>) -> String {
        let mut lines = self.lines.clone();
        let mut skip = self.lines;
        for line in tail {
            match skip.iter().position(|l| *l == line) {
                Some(at) => {
                    skip.remove(at);
                }
                None => lines.push(line),
            }
        }
        lines.join("\n")
    }
}

/// A running child whose stdout is read as a stream. Reaching EOF waits for the child and
/// turns a failed exit into an `io::Error` wrapping [`CommandError`], so a truncated
/// stream can never pass for a complete one.
pub struct CommandReader {
    child: Child,
    stdout: ChildStdout,
    stderr: StderrTail,
    program: String,
    argv: String,
    finished: bool,
}

impl CommandReader {
    pub fn spawn(cmd: &mut Command) -> Result<CommandReader, CommandError> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| spawn_error(cmd, err))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| spawn_error(cmd, io::Error::other("no stdout pipe")))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| spawn_error(cmd, io::Error::other("no stderr pipe")))?;
        Ok(CommandReader {
            child,
            stdout,
            stderr: StderrTail::drain(stderr),
            program: program_name(cmd),
            argv: describe(cmd),
            finished: false,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        let status = self.child.wait()?;
        let tail = self.stderr.finish();
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(CommandError {
                program: self.program.clone(),
                argv: self.argv.clone(),
                status: status_text(status),
                stderr_tail: tail,
            }))
        }
    }
}

impl Read for CommandReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finish()?;
        }
        Ok(n)
    }
}

impl Drop for CommandReader {
    fn drop(&mut self) {
        if !self.finished {
            // Abandoned mid-stream (an upload failed): don't leave the child behind.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Finds a program on `PATH`, for `check`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn megabytes_without_a_newline_are_kept_to_the_line_limit() {
        let mut text = vec![b'x'; 5_000_000];
        text.extend_from_slice(b"\nlast line\n");
        let mut reader = io::BufReader::new(text.as_slice());
        assert_eq!(read_capped_line(&mut reader).unwrap().len(), LINE_LIMIT);
        assert_eq!(read_capped_line(&mut reader).unwrap(), b"last line");
        assert_eq!(read_capped_line(&mut reader), None);
    }

    #[test]
    fn postgresqls_error_and_detail_come_first_even_when_a_long_context_follows() {
        let mut stderr = String::from("psql:<stdin>:9: ERROR:  type \"public.mood\" does not exist\nDETAIL:  the detail\nHINT:  the hint\nQUERY:  CREATE TABLE public.node (\n");
        for i in 0..40 {
            stderr.push_str(&format!("    column{i} integer,\n"));
        }
        stderr.push_str(")\nCONTEXT:  PL/pgSQL function inline_code_block line 1 at EXECUTE\n");
        let text = StderrTail::drain(std::io::Cursor::new(stderr.into_bytes())).finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "psql:<stdin>:9: ERROR:  type \"public.mood\" does not exist",
                "DETAIL:  the detail",
                "HINT:  the hint"
            ]
        );
        assert_eq!(lines.len(), 3 + STDERR_TAIL_LINES);
        assert_eq!(
            lines.last(),
            Some(&"CONTEXT:  PL/pgSQL function inline_code_block line 1 at EXECUTE")
        );
    }

    #[test]
    fn a_short_error_is_not_repeated() {
        let stderr = "psql:<stdin>:1: ERROR:  boom\nDETAIL:  why\n";
        let text = StderrTail::drain(std::io::Cursor::new(stderr.as_bytes().to_vec())).finish();
        assert_eq!(text, "psql:<stdin>:1: ERROR:  boom\nDETAIL:  why");
    }

    #[test]
    fn a_failed_command_reports_status_and_stderr() {
        let err = output(Command::new("sh").args(["-c", "echo oops >&2; exit 3"])).unwrap_err();
        assert_eq!(err.to_string(), "sh failed (exit status 3): oops");
    }

    #[test]
    fn a_missing_program_says_so() {
        let err = output(&mut Command::new("pgferry-no-such-program")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pgferry-no-such-program failed (not found on PATH)"
        );
    }

    #[test]
    fn a_reader_fails_at_eof_when_the_child_failed() {
        let mut reader = CommandReader::spawn(
            Command::new("sh").args(["-c", "echo data; echo broken >&2; exit 1"]),
        )
        .unwrap();
        let mut out = String::new();
        let err = reader.read_to_string(&mut out).unwrap_err();
        assert_eq!(out, "data\n");
        assert!(
            err.to_string()
                .contains("sh failed (exit status 1): broken"),
            "{err}"
        );
    }

    #[test]
    fn a_reader_streams_a_successful_child() {
        let mut reader = CommandReader::spawn(Command::new("sh").args(["-c", "seq 1 3"])).unwrap();
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert_eq!(out, "1\n2\n3\n");
    }
}
