//! `receiver prune`: applies the retention policy now.

use std::path::Path;

use chrono::Utc;
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::settings::ReceiverSettings;

use crate::prune;

pub fn run(config: &Path, options: &Options) -> anyhow::Result<Exit> {
    let settings = ReceiverSettings::read(config)?;
    let jobs = crate::metrics::jobs(&settings, options);
    jobs.run("prune", || job(&settings))?;
    Ok(Exit::Done)
}

/// The job the command and the daemon run.
pub fn job(settings: &ReceiverSettings) -> anyhow::Result<()> {
    let deleted = prune::prune(settings, Utc::now())?;
    tracing::info!(deleted = deleted.len(), "prune finished");
    Ok(())
}
