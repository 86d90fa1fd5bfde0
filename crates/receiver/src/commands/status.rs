//! `receiver status [--json]`: what was applied last, what waits, what failed, the lag.

use std::path::Path;

use chrono::{DateTime, Utc};
use pgferry::exit::Exit;
use pgferry::history::{self, JobHistory};
use pgferry::pg::Psql;
use pgferry::settings::ReceiverSettings;
use serde::Serialize;

use crate::blocked::{self, Blocked};
use crate::load::ledger::{self, Record};
use crate::{fetch, inbox};

/// The receiver's jobs, in the order status shows them.
pub const JOBS: [&str; 3] = ["load", "prune", "staleness"];

#[derive(Debug, Serialize)]
pub struct Status {
    pub jobs: Vec<JobHistory>,
    pub last_complete: Option<Record>,
    pub last_partial: Option<Record>,
    pub pending: Vec<String>,
    pub failed: Vec<String>,
    /// The pending bundle the target refused, which holds back the bundles after it.
    pub blocked: Option<Blocked>,
    /// What clears `blocked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_hint: Option<&'static str>,
    /// Seconds between now and the newest source time applied.
    pub lag_seconds: Option<i64>,
    /// With an S3 inbox: what the store holds, and how much of it is not taken yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<fetch::Survey>,
    pub now: DateTime<Utc>,
}

pub fn gather(settings: &ReceiverSettings, now: DateTime<Utc>) -> anyhow::Result<Status> {
    let psql = Psql::new(settings.target.connection());
    let [last_complete, last_partial] = ledger::last_applied_each(&psql)?;
    let newest = [&last_complete, &last_partial]
        .into_iter()
        .flatten()
        .map(Record::source_time)
        .max();
    let names = |dir: &Path| -> anyhow::Result<Vec<String>> {
        Ok(inbox::list(dir)?.iter().map(|n| n.file_name()).collect())
    };
    let pending = names(&settings.inbox.dir)?;
    // A block whose bundle left the inbox (by hand) is over, though no load cleared it yet.
    let blocked = blocked::read(&settings.state.dir)?.filter(|b| pending.contains(&b.bundle));
    Ok(Status {
        jobs: history::all(&settings.state.dir, &JOBS)?,
        last_complete,
        last_partial,
        pending,
        failed: names(&settings.inbox.dir.join(inbox::FAILED))?,
        blocked_hint: blocked.as_ref().map(|_| blocked::CLEARED_BY),
        blocked,
        lag_seconds: newest.map(|t| (now - t).num_seconds()),
        store: None,
        now,
    })
}

pub fn run(config: &Path, json: bool, prometheus: bool) -> anyhow::Result<Exit> {
    let settings = ReceiverSettings::read(config)?;
    if prometheus {
        print!("{}", crate::metrics::render(&settings, Utc::now())?);
        return Ok(Exit::Done);
    }
    let mut status = gather(&settings, Utc::now())?;
    status.store = fetch::survey(&settings);
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(Exit::Done);
    }
    for (label, record) in [
        ("last complete", &status.last_complete),
        ("last partial", &status.last_partial),
    ] {
        match record {
            Some(r) => println!(
                "{label:<14} {} (source snapshot {}, applied {})",
                r.bundle,
                r.source_time().to_rfc3339(),
                r.applied_at.to_rfc3339()
            ),
            None => println!("{label:<14} none"),
        }
    }
    println!("{:<14} {}", "pending", status.pending.len());
    println!("{:<14} {}", "failed", status.failed.len());
    if let Some(store) = &status.store {
        match &store.error {
            Some(error) => println!("{:<14} {}: cannot list it: {error}", "store", store.store),
            None => println!(
                "{:<14} {}: {} bundles, {} not fetched yet",
                "store", store.store, store.bundles, store.not_taken
            ),
        }
    }
    if let Some(block) = &status.blocked {
        println!(
            "{:<14} {} since {}: {}",
            "blocked by",
            block.bundle,
            block.since.to_rfc3339(),
            block.reason
        );
        println!("{:<14} {}", "", blocked::CLEARED_BY);
    }
    match status.lag_seconds {
        Some(lag) => println!("{:<14} {}", "lag", humanize(lag)),
        None => println!("{:<14} unknown (nothing applied yet)", "lag"),
    }
    for job in &status.jobs {
        println!("{}", history::describe(job));
    }
    Ok(Exit::Done)
}

fn humanize(seconds: i64) -> String {
    let seconds = seconds.max(0) as u64;
    humantime_like(seconds)
}

fn humantime_like(seconds: u64) -> String {
    let (d, h, m, s) = (
        seconds / 86_400,
        seconds / 3600 % 24,
        seconds / 60 % 60,
        seconds % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}
