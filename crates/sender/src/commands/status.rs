//! `sender status [--json]`: each job's last success and failure, and the partial
//! high-water mark.

use std::path::Path;

use pgferry::exit::Exit;
use pgferry::history::{self, JobHistory};
use pgferry::settings::SenderSettings;
use pgferry::watermark::{self, Watermark};
use serde::Serialize;

/// The sender's jobs, in the order status shows them.
pub const JOBS: [&str; 3] = ["complete", "partial", "check-remote"];

#[derive(Debug, Serialize)]
pub struct Status {
    pub jobs: Vec<JobHistory>,
    pub high_water_mark: Option<Watermark>,
}

pub fn gather(settings: &SenderSettings) -> anyhow::Result<Status> {
    Ok(Status {
        jobs: history::all(&settings.state.dir, &JOBS)?,
        high_water_mark: watermark::read(&settings.state.dir)?,
    })
}

pub fn run(config: &Path, json: bool) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let status = gather(&settings)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(Exit::Done);
    }
    for job in &status.jobs {
        println!("{}", pgferry::history::describe(job));
    }
    match &status.high_water_mark {
        Some(mark) => println!(
            "{:<14} {} (set by {})",
            "high-water",
            mark.high_water_mark.to_rfc3339(),
            mark.bundle
        ),
        None => println!("{:<14} none (no bundle published yet)", "high-water"),
    }
    Ok(Exit::Done)
}
