//! `receiver run`: the daemon. `load` and `prune` on their schedules, the same job
//! functions the one-shot commands call, and the staleness check after every load.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use pgferry::daemon;
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::progress::Progress;
use pgferry::settings::ReceiverSettings;

use crate::commands::{load, prune};
use crate::staleness;

pub fn run(config: &Path, options: &Options) -> anyhow::Result<Exit> {
    let settings = Arc::new(ReceiverSettings::read(config)?);
    let jobs = crate::metrics::jobs(&settings, options);
    let started = Utc::now();
    let load_job = {
        let (settings, jobs) = (settings.clone(), jobs.clone());
        move || {
            let loaded = load::job(&settings, false, &Progress::none());
            // Its own job, so it alerts once when stale and once when fresh again.
            let _ = jobs.run("staleness", || {
                staleness::check(&settings, started, Utc::now())
            });
            loaded
        }
    };
    let prune_job = {
        let settings = settings.clone();
        move || prune::job(&settings)
    };
    let scheduled = vec![
        jobs.scheduled("load", &settings.schedule.load, load_job),
        jobs.scheduled("prune", &settings.schedule.prune, prune_job),
    ];
    daemon::run_until_terminated(scheduled)?;
    Ok(Exit::Done)
}
