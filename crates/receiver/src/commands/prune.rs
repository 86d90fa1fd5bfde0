//! `receiver prune`: applies the retention policy now.

use std::path::Path;

use chrono::Utc;
use pgferry::exit::Exit;
use pgferry::lock::JobLock;
use pgferry::settings::ReceiverSettings;

use crate::prune;

pub fn run(config: &Path) -> anyhow::Result<Exit> {
    let settings = ReceiverSettings::read(config)?;
    let _lock = JobLock::acquire(&settings.state.dir, "prune")?;
    let deleted = prune::prune(&settings, Utc::now())?;
    tracing::info!(deleted = deleted.len(), "prune finished");
    Ok(Exit::Done)
}
