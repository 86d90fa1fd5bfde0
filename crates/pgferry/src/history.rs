//! Each job's history in the state dir: consecutive failures, last success and failure,
//! and when it last alerted. Failure and recovery are state, so one email goes out when a
//! job starts failing, none while it stays broken, and one when it recovers (guarantee 9).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the history knows about one job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobHistory {
    pub job: String,
    pub consecutive_failures: u32,
    pub last_success: Option<DateTime<Utc>>,
    pub last_failure: Option<DateTime<Utc>>,
    /// The last failure's error, with its causes.
    pub last_error: Option<String>,
    /// When the last FAILED email went out; `None` once the job recovered.
    pub last_alert: Option<DateTime<Utc>>,
    /// How long the last run took, in milliseconds.
    #[serde(default)]
    pub last_duration_ms: Option<u64>,
}

/// The email a run's outcome calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The job failed and has not alerted within `repeat_after`.
    Failed,
    /// The job succeeded after a failure that was alerted.
    Recovered,
    None,
}

fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("history")
}

fn path(state_dir: &Path, job: &str) -> PathBuf {
    dir(state_dir).join(format!("{job}.json"))
}

impl JobHistory {
    /// Records a failure at `now` and says whether it should alert.
    pub fn failed(
        &mut self,
        now: DateTime<Utc>,
        error: &str,
        repeat_after: chrono::Duration,
    ) -> Notice {
        self.consecutive_failures += 1;
        self.last_failure = Some(now);
        self.last_error = Some(error.to_string());
        match self.last_alert {
            Some(alerted) if now - alerted < repeat_after => Notice::None,
            _ => Notice::Failed,
        }
    }

    /// Records a success at `now` and says whether a recovery email is due.
    pub fn succeeded(&mut self, now: DateTime<Utc>) -> Notice {
        self.consecutive_failures = 0;
        self.last_success = Some(now);
        match self.last_alert.take() {
            Some(_) => Notice::Recovered,
            None => Notice::None,
        }
    }
}

/// The history of `job`, empty when it never ran.
pub fn read(state_dir: &Path, job: &str) -> anyhow::Result<JobHistory> {
    let file = path(state_dir, job);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("read job history {}", file.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(JobHistory {
            job: job.to_string(),
            ..JobHistory::default()
        }),
        Err(err) => Err(err).with_context(|| format!("read job history {}", file.display())),
    }
}

pub fn write(state_dir: &Path, history: &JobHistory) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(history)?;
    crate::atomic_file::write(&path(state_dir, &history.job), &json)
}

/// One line for people: `partial        ok, last success ...` or `load  FAILING (3 in a row) ...`.
pub fn describe(history: &JobHistory) -> String {
    let time =
        |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into());
    let state = match (history.consecutive_failures, history.last_success) {
        (0, None) => "never ran".to_string(),
        (0, Some(_)) => "ok".to_string(),
        (n, _) => format!("FAILING ({n} in a row)"),
    };
    let mut line = format!(
        "{:<14} {state}; last success {}, last failure {}",
        history.job,
        time(history.last_success),
        time(history.last_failure)
    );
    if history.consecutive_failures > 0 {
        if let Some(error) = &history.last_error {
            line.push_str(&format!(
                "\n{:<14} error: {}",
                "",
                error.lines().next().unwrap_or("")
            ));
        }
    }
    line
}

/// The histories of `jobs`, in that order, for `status`.
pub fn all(state_dir: &Path, jobs: &[&str]) -> anyhow::Result<Vec<JobHistory>> {
    jobs.iter().map(|job| read(state_dir, job)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    #[test]
    fn one_alert_per_outage_then_one_recovery() {
        let repeat = chrono::Duration::hours(6);
        let mut history = JobHistory::default();
        assert_eq!(history.failed(at(0), "boom", repeat), Notice::Failed);
        history.last_alert = Some(at(0));
        assert_eq!(history.failed(at(5), "boom", repeat), Notice::None);
        assert_eq!(
            history.failed(at(60 * 6), "boom", repeat),
            Notice::Failed,
            "repeat_after passed"
        );
        history.last_alert = Some(at(60 * 6));
        assert_eq!(history.consecutive_failures, 3);
        assert_eq!(history.succeeded(at(60 * 7)), Notice::Recovered);
        assert_eq!(history.consecutive_failures, 0);
        assert_eq!(history.succeeded(at(60 * 8)), Notice::None);
    }

    #[test]
    fn a_failure_whose_email_was_not_sent_alerts_again_next_time() {
        let repeat = chrono::Duration::hours(6);
        let mut history = JobHistory::default();
        assert_eq!(history.failed(at(0), "boom", repeat), Notice::Failed);
        // The email failed, so last_alert was not set.
        assert_eq!(history.failed(at(1), "boom", repeat), Notice::Failed);
        assert_eq!(
            history.succeeded(at(2)),
            Notice::None,
            "no recovery for an outage nobody was told of"
        );
    }

    #[test]
    fn history_round_trips_through_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path(), "load").unwrap().consecutive_failures, 0);
        let mut history = read(dir.path(), "load").unwrap();
        history.failed(at(0), "boom", chrono::Duration::hours(1));
        write(dir.path(), &history).unwrap();
        assert_eq!(read(dir.path(), "load").unwrap(), history);
    }
}
