//! The receiver's metrics (`[metrics] textfile`, `receiver status --prometheus`): its
//! jobs, its last bundles, the queue (pending, failed, blocked) and the lag.

use chrono::{DateTime, Utc};
use pgferry::history;
use pgferry::job::{Jobs, Options};
use pgferry::last_bundles;
use pgferry::metrics::{self, Exposition};
use pgferry::pg::Psql;
use pgferry::settings::ReceiverSettings;

use crate::commands::status::JOBS;
use crate::load::ledger;
use crate::{blocked, inbox};

/// The receiver's metrics at `now`, in Prometheus' text format. The lag needs the target
/// database; when it cannot be asked, the lag is left out and the rest is written.
pub fn render(settings: &ReceiverSettings, now: DateTime<Utc>) -> anyhow::Result<String> {
    let state = &settings.state.dir;
    let mut out = Exposition::default();
    metrics::jobs(&mut out, &history::all(state, &JOBS)?);
    metrics::bundles(&mut out, &last_bundles::read(state)?);
    let pending = inbox::pending(&settings.inbox.dir)?;
    out.gauge(
        "pgferry_receiver_pending_bundles",
        "Bundles in the inbox waiting to be applied.",
        &[],
        pending.len() as f64,
    );
    out.gauge(
        "pgferry_receiver_failed_bundles",
        "Bundles in the inbox's failed/ directory.",
        &[],
        inbox::list(&settings.inbox.dir.join(inbox::FAILED))?.len() as f64,
    );
    let blocked =
        blocked::read(state)?.is_some_and(|b| pending.iter().any(|n| n.file_name() == b.bundle));
    out.gauge(
        "pgferry_receiver_blocked",
        "1 while a bundle the target refused blocks the queue.",
        &[],
        f64::from(u8::from(blocked)),
    );
    match newest_applied(settings) {
        Ok(Some(newest)) => out.gauge(
            "pgferry_receiver_lag_seconds",
            "Seconds from the newest applied bundle's source snapshot (or window end) to now.",
            &[],
            (now - newest).num_milliseconds() as f64 / 1000.0,
        ),
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "metrics without the lag: the ledger could not be read")
        }
    }
    Ok(out.render())
}

/// The source time of the newest applied bundle, from the ledger.
fn newest_applied(settings: &ReceiverSettings) -> anyhow::Result<Option<DateTime<Utc>>> {
    let psql = Psql::new(settings.target.connection());
    Ok(ledger::last_applied_each(&psql)?
        .into_iter()
        .flatten()
        .map(|r| r.source_time())
        .max())
}

/// The jobs of the receiver, writing the metrics textfile after each when configured.
pub fn jobs(settings: &ReceiverSettings, options: &Options) -> Jobs {
    let jobs = Jobs::new(&settings.state.dir, &settings.alerts, options);
    let Some(config) = &settings.metrics else {
        return jobs;
    };
    let settings = settings.clone();
    metrics::after_every_job(jobs, config.textfile.clone(), move |now| {
        render(&settings, now)
    })
}
