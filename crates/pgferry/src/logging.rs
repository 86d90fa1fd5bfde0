//! Logging to stderr as text or JSON lines, with a level from `-v`/`-q`. A copy of the
//! recent lines is kept in memory so a failure alert can quote them.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How many of the last log lines an alert quotes.
const RECENT_LINES: usize = 50;

/// The last log lines, shared with whoever writes alerts.
#[derive(Clone, Default)]
pub struct RecentLines(Arc<Mutex<VecDeque<String>>>);

impl RecentLines {
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn clear(&self) {
        if let Ok(mut lines) = self.0.lock() {
            lines.clear();
        }
    }
}

/// Writes each log line to stderr and remembers it.
pub struct TeeWriter {
    recent: RecentLines,
    buffer: Vec<u8>,
}

impl Write for TeeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        let _ = std::io::stderr().write_all(&self.buffer);
        if let Ok(mut lines) = self.recent.0.lock() {
            for line in String::from_utf8_lossy(&self.buffer).lines() {
                if lines.len() == RECENT_LINES {
                    lines.pop_front();
                }
                lines.push_back(line.to_string());
            }
        }
    }
}

impl<'a> MakeWriter<'a> for RecentLines {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter {
            recent: self.clone(),
            buffer: Vec::new(),
        }
    }
}

/// Sets up logging once per process. `verbosity` is `-v` count minus `-q` count; 0 shows
/// info and above. `PGFERRY_LOG` (an EnvFilter directive) overrides it.
pub fn init(verbosity: i8, format: LogFormat) -> RecentLines {
    let level = match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("PGFERRY_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let recent = RecentLines::default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(recent.clone())
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    recent
}
