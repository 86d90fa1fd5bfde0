//! The sender's metrics (`[metrics] textfile`, `sender status --prometheus`): its jobs, its
//! last bundles, and how far the partial high-water mark is behind.

use chrono::{DateTime, Utc};
use pgferry::history;
use pgferry::job::{Jobs, Options};
use pgferry::last_bundles;
use pgferry::metrics::{self, Exposition};
use pgferry::settings::SenderSettings;
use pgferry::watermark;

use crate::commands::status::JOBS;

/// The sender's metrics at `now`, in Prometheus' text format.
pub fn render(settings: &SenderSettings, now: DateTime<Utc>) -> anyhow::Result<String> {
    let state = &settings.state.dir;
    let mut out = Exposition::default();
    metrics::jobs(&mut out, &history::all(state, &JOBS)?);
    metrics::bundles(&mut out, &last_bundles::read(state)?);
    if let Some(mark) = watermark::read(state)? {
        out.gauge(
            "pgferry_sender_high_water_mark_age_seconds",
            "How far the partial high-water mark is behind now: rows changed since are not sent yet.",
            &[],
            (now - mark.high_water_mark).num_milliseconds() as f64 / 1000.0,
        );
        out.gauge(
            "pgferry_sender_high_water_mark_held_back_seconds",
            "How far a transaction open at the last snapshot held the mark back (0: none).",
            &[],
            mark.held_back
                .map_or(0.0, |h| h.by().num_milliseconds() as f64 / 1000.0),
        );
    }
    Ok(out.render())
}

/// The jobs of the sender, writing the metrics textfile after each when configured.
pub fn jobs(settings: &SenderSettings, options: &Options) -> Jobs {
    let jobs = Jobs::new(&settings.state.dir, &settings.alerts, options);
    let Some(config) = &settings.metrics else {
        return jobs;
    };
    let settings = settings.clone();
    metrics::after_every_job(jobs, config.textfile.clone(), move |now| {
        render(&settings, now)
    })
}
