//! Runs one job the same way for the one-shot commands and the daemon: take the job's
//! lock (guarantee 8), log its start, end, duration and result, keep its history, and
//! email on failure and recovery (guarantee 9). The job's own result passes through
//! unchanged: a history or email problem is logged, never returned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::alert::{self, Email};
use crate::daemon::Scheduled;
use crate::history::{self, Notice};
use crate::lock::{JobLock, LockHeld};
use crate::logging::RecentLines;
use crate::settings::alerts::AlertSettings;
use crate::settings::Schedule;

/// How the command line asked jobs to run.
#[derive(Clone, Default)]
pub struct Options {
    /// The log lines an alert quotes.
    pub recent: RecentLines,
    /// `--no-alert`: keep history, send no email.
    pub no_alert: bool,
    /// Where a one-shot command started on a terminal shows its progress.
    pub progress: crate::progress::Progress,
}

/// What every job of one side needs to run, alert and keep history.
#[derive(Clone)]
pub struct Jobs {
    pub state_dir: PathBuf,
    pub alerts: AlertSettings,
    /// The log lines an alert quotes.
    pub recent: RecentLines,
    /// `--no-alert`: keep history, send no email.
    pub no_alert: bool,
    pub host: String,
    /// Runs after every job, once its history is written: the side's metrics.
    pub after_job: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Jobs {
    pub fn new(state_dir: &Path, alerts: &AlertSettings, options: &Options) -> Jobs {
        Jobs {
            state_dir: state_dir.to_path_buf(),
            alerts: alerts.clone(),
            recent: options.recent.clone(),
            no_alert: options.no_alert,
            host: alert::host_name(),
            after_job: None,
        }
    }

    /// The same, calling `after_job` after every job.
    pub fn with_after_job(mut self, after_job: impl Fn() + Send + Sync + 'static) -> Jobs {
        self.after_job = Some(Arc::new(after_job));
        self
    }

    /// `work` as a daemon job on `schedule`. Its errors were logged and alerted by
    /// [`Jobs::run`] already; a lock held by another process is only a skipped tick.
    pub fn scheduled(
        &self,
        name: &'static str,
        schedule: &Schedule,
        work: impl Fn() -> anyhow::Result<()> + Send + Sync + 'static,
    ) -> Scheduled {
        let jobs = self.clone();
        Scheduled {
            name,
            schedule: schedule.clone(),
            work: Arc::new(move || {
                if let Err(err) = jobs.run(name, &work) {
                    if let Some(held) = err.downcast_ref::<LockHeld>() {
                        tracing::warn!(job = name, "skipped: {held}");
                    }
                }
            }),
        }
    }

    /// Runs `work` as job `job`. A held lock returns [`crate::lock::LockHeld`] at once and
    /// leaves the history alone: the job did not run.
    pub fn run<T>(&self, job: &str, work: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let _lock = JobLock::acquire(&self.state_dir, job)?;
        self.recent.clear();
        let started = Instant::now();
        tracing::info!(job, "job started");
        let result = work();
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(_) => tracing::info!(job, seconds, result = "ok", "job finished"),
            Err(err) => {
                tracing::error!(job, seconds, result = "failed", error = %format!("{err:#}"), "job failed")
            }
        }
        self.after(job, result.as_ref().err(), started.elapsed(), Utc::now());
        if let Some(after_job) = &self.after_job {
            after_job();
        }
        result
    }

    /// Records the outcome and sends the email it calls for; problems are only logged.
    fn after(
        &self,
        job: &str,
        error: Option<&anyhow::Error>,
        took: std::time::Duration,
        now: DateTime<Utc>,
    ) {
        if let Err(err) = self.record(job, error, took, now) {
            tracing::error!(job, error = %format!("{err:#}"), "could not record the job's history or send its alert");
        }
    }

    fn record(
        &self,
        job: &str,
        error: Option<&anyhow::Error>,
        took: std::time::Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut history = history::read(&self.state_dir, job)?;
        history.last_duration_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        let repeat_after = self.alerts.repeat_after();
        let failures_before = history.consecutive_failures;
        let notice = match error {
            Some(err) => history.failed(
                now,
                &format!("{err:#}"),
                chrono::Duration::from_std(repeat_after)?,
            ),
            None => history.succeeded(now),
        };
        let email = match (notice, error) {
            (Notice::Failed, Some(err)) => Some(alert::failed(
                job,
                &self.host,
                now,
                err,
                history.consecutive_failures,
                &humantime::format_duration(repeat_after).to_string(),
                &self.recent.lines(),
            )),
            (Notice::Recovered, _) => Some(alert::recovered(job, &self.host, now, failures_before)),
            _ => None,
        };
        if let Some(email) = email {
            if self.send(job, &email) && notice == Notice::Failed {
                history.last_alert = Some(now);
            }
        }
        history::write(&self.state_dir, &history)
    }

    /// Sends one alert; true when it went out.
    fn send(&self, job: &str, email: &Email) -> bool {
        if self.no_alert {
            tracing::info!(job, subject = %email.subject, "alerts are off (--no-alert); not sending");
            return false;
        }
        match alert::send(&self.alerts, email) {
            Ok(()) => {
                tracing::info!(job, subject = %email.subject, "alert sent");
                true
            }
            Err(err) => {
                tracing::error!(job, error = %format!("{err:#}"), "could not send the alert email");
                false
            }
        }
    }
}
