//! `sender run`: the daemon. `complete`, `partial` and `check-remote` on their schedules,
//! each the same job function its one-shot command calls.

use std::path::Path;
use std::sync::Arc;

use pgferry::daemon;
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::progress::Progress;
use pgferry::settings::SenderSettings;

use crate::commands::{check_remote, complete, partial};

pub fn run(config: &Path, options: &Options) -> anyhow::Result<Exit> {
    let settings = Arc::new(SenderSettings::read(config)?);
    let jobs = crate::metrics::jobs(&settings, options);
    let complete_job = {
        let settings = settings.clone();
        move || complete::job(&settings, &Progress::none())
    };
    let partial_job = {
        let settings = settings.clone();
        move || partial::job(&settings, None)
    };
    let check_remote_job = {
        let settings = settings.clone();
        move || check_remote::check_remote(&settings)
    };
    let scheduled = vec![
        jobs.scheduled("complete", &settings.schedule.complete, complete_job),
        jobs.scheduled("partial", &settings.schedule.partial, partial_job),
        jobs.scheduled(
            "check-remote",
            &settings.schedule.check_remote,
            check_remote_job,
        ),
    ];
    daemon::run_until_terminated(scheduled)?;
    Ok(Exit::Done)
}
