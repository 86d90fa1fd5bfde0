//! The receiver daemon's staleness alert: when no bundle has been applied for
//! `schedule.stale_after`, the sender (or the link) has stopped, and nothing else would
//! say so. It runs as a job of its own, so it alerts once and recovers like any job.

use chrono::{DateTime, Duration, Utc};
use pgferry::cause::{self, Cause};
use pgferry::pg::Psql;
use pgferry::settings::ReceiverSettings;

use crate::load::ledger;

/// Fails when nothing was applied within `stale_after` before `now`. With nothing applied
/// ever, the clock starts at `since` (when the daemon started).
pub fn check(
    settings: &ReceiverSettings,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let psql = Psql::new(settings.target.connection());
    let last = ledger::last_applied_each(&psql)?
        .into_iter()
        .flatten()
        .map(|r| r.applied_at)
        .max();
    evaluate(
        last,
        since,
        now,
        settings.schedule.stale_after.as_chrono(),
        &settings.schedule.stale_after.to_string(),
    )
}

/// The decision, with time as an input.
pub fn evaluate(
    last_applied: Option<DateTime<Utc>>,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    stale_after: Duration,
    written: &str,
) -> anyhow::Result<()> {
    let reference = last_applied.unwrap_or(since);
    if now - reference <= stale_after {
        return Ok(());
    }
    let age = (now - reference).to_std().unwrap_or_default();
    let age = humantime::format_duration(std::time::Duration::from_secs(age.as_secs()));
    let stale = match last_applied {
        Some(at) => anyhow::anyhow!(
            "no bundle has been applied for {age} (the last at {}), longer than schedule.stale_after ({written})\nhint: check that the sender's partial and complete jobs succeed and that bundles reach the inbox",
            at.to_rfc3339()
        ),
        None => anyhow::anyhow!(
            "no bundle has been applied since the daemon started {age} ago, longer than schedule.stale_after ({written})\nhint: check that the sender's partial and complete jobs succeed and that bundles reach the inbox"
        ),
    };
    Err(cause::tag(stale, Cause::Stale))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + minutes * 60, 0).unwrap()
    }

    #[test]
    fn fresh_is_quiet_and_stale_names_the_age() {
        let limit = Duration::minutes(30);
        assert!(evaluate(Some(at(0)), at(-100), at(30), limit, "30m").is_ok());
        let err = evaluate(Some(at(0)), at(-100), at(45), limit, "30m").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no bundle has been applied for 45m (the last at "),
            "{err}"
        );
    }

    #[test]
    fn with_nothing_applied_the_clock_starts_with_the_daemon() {
        let limit = Duration::minutes(30);
        assert!(evaluate(None, at(0), at(29), limit, "30m").is_ok());
        let err = evaluate(None, at(0), at(31), limit, "30m").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("no bundle has been applied since the daemon started 31m ago"),
            "{err}"
        );
    }
}
