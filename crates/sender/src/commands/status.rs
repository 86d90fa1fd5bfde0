//! `sender status [--json]`: each job's last success and failure, the partial
//! high-water mark, and what the store holds.

use std::path::Path;

use pgferry::bundle::Kind;
use pgferry::exit::Exit;
use pgferry::history::{self, JobHistory};
use pgferry::settings::SenderSettings;
use pgferry::watermark::{self, HeldBack, Watermark};
use serde::Serialize;

/// The sender's jobs, in the order status shows them.
pub const JOBS: [&str; 3] = ["complete", "partial", "check-remote"];

#[derive(Debug, Serialize)]
pub struct Status {
    pub jobs: Vec<JobHistory>,
    pub high_water_mark: Option<Watermark>,
    /// With `[partial] source = "logical"`: the slot, as the primary shows it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotStatus>,
    /// What the store holds now (the receiver's inbox or the bucket).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,
}

#[derive(Debug, Serialize)]
pub struct StoreStatus {
    pub store: String,
    pub completes: usize,
    pub partials: usize,
    pub bytes: u64,
    pub newest: Option<String>,
    /// Why the store could not be listed; the counts are then zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lists the store; a store that cannot be listed is reported, not an error of status.
fn store_status(settings: &SenderSettings) -> StoreStatus {
    let mut status = StoreStatus {
        store: settings.remote.describe(),
        completes: 0,
        partials: 0,
        bytes: 0,
        newest: None,
        error: None,
    };
    // Status is a quick look: a store that does not answer within 10 s is reported so.
    let remote = settings
        .remote
        .with_timeout_at_most(std::time::Duration::from_secs(10));
    match pgferry::store::open(&remote).and_then(|store| store.list()) {
        Ok(listed) => {
            for stored in &listed {
                match stored.name.kind {
                    Kind::Complete => status.completes += 1,
                    Kind::Partial => status.partials += 1,
                }
                status.bytes += stored.bytes;
            }
            status.newest = listed.last().map(|s| s.name.file_name());
        }
        Err(err) => status.error = Some(format!("{err:#}").replace('\n', "; ")),
    }
    status
}

fn store_line(store: &StoreStatus) -> String {
    match &store.error {
        Some(error) => format!("{:<14} {}: cannot list it: {error}", "store", store.store),
        None => format!(
            "{:<14} {}: {} complete and {} partial bundles, {}; newest {}",
            "store",
            store.store,
            store.completes,
            store.partials,
            pgferry::settings::Size(store.bytes),
            store.newest.as_deref().unwrap_or("none")
        ),
    }
}

#[derive(Debug, Serialize)]
pub struct SlotStatus {
    pub name: String,
    /// False when the slot does not exist (yet).
    pub exists: bool,
    pub wal_status: Option<String>,
    /// Bytes of WAL the primary keeps for it.
    pub retained_wal: Option<i64>,
    pub max_retained_wal: u64,
}

pub fn gather(settings: &SenderSettings) -> anyhow::Result<Status> {
    Ok(Status {
        jobs: history::all(&settings.state.dir, &JOBS)?,
        high_water_mark: watermark::read(&settings.state.dir)?,
        slot: None,
        store: None,
    })
}

/// The slot's state from the primary; an unreachable primary is an error of its own.
fn slot_status(settings: &SenderSettings) -> anyhow::Result<SlotStatus> {
    let psql = pgferry::pg::Psql::new(settings.source.connection());
    let state = crate::slot::state(&psql, &settings.partial.slot)?;
    Ok(SlotStatus {
        name: settings.partial.slot.clone(),
        exists: state.is_some(),
        wal_status: state.as_ref().and_then(|s| s.wal_status.clone()),
        retained_wal: state.and_then(|s| s.retained),
        max_retained_wal: settings.partial.max_retained_wal.0,
    })
}

pub fn run(config: &Path, json: bool, prometheus: bool) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    if prometheus {
        print!("{}", crate::metrics::render(&settings, chrono::Utc::now())?);
        return Ok(Exit::Done);
    }
    let mut status = gather(&settings)?;
    if settings.partial.source == pgferry::settings::ChangeSource::Logical {
        status.slot = Some(slot_status(&settings)?);
    }
    status.store = Some(store_status(&settings));
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(Exit::Done);
    }
    for job in &status.jobs {
        println!("{}", pgferry::history::describe(job));
    }
    match &status.high_water_mark {
        Some(mark) => {
            println!(
                "{:<14} {} (set by {})",
                "high-water",
                mark.high_water_mark.to_rfc3339(),
                mark.bundle
            );
            if let Some(held) = &mark.held_back {
                println!("{}", held_back_line(held));
            }
        }
        None => println!("{:<14} none (no bundle published yet)", "high-water"),
    }
    if let Some(store) = &status.store {
        println!("{}", store_line(store));
    }
    if let Some(slot) = &status.slot {
        match (slot.exists, slot.retained_wal) {
            (false, _) => println!("{:<14} {} does not exist yet", "slot", slot.name),
            (true, retained) => println!(
                "{:<14} {}: keeps {} of WAL (max_retained_wal {}), wal_status {}",
                "slot",
                slot.name,
                pgferry::settings::Size(u64::try_from(retained.unwrap_or(0)).unwrap_or(0)),
                pgferry::settings::Size(slot.max_retained_wal),
                slot.wal_status.as_deref().unwrap_or("-")
            ),
        }
    }
    Ok(Exit::Done)
}

/// The transaction that keeps the mark short of the last snapshot, with a warning once it
/// has done so for over an hour.
fn held_back_line(held: &HeldBack) -> String {
    let by = humantime::format_duration(held.by().to_std().unwrap_or_default());
    let line = format!(
        "{:<14} by {by}: the transaction of pid {} ({:?}) open since {}",
        "held back",
        held.pid,
        held.application_name,
        held.since.to_rfc3339()
    );
    if held.is_long() {
        format!("{line}\nwarn: a transaction open for over an hour holds the partial window back; each partial resends what changed since it began")
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn held(since: &str) -> HeldBack {
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().to_utc();
        HeldBack {
            pid: 7,
            application_name: "import".into(),
            since: at(since),
            snapshot: at("2026-01-01T12:00:00Z"),
        }
    }

    #[test]
    fn status_warns_when_the_mark_is_held_back_over_an_hour() {
        assert_eq!(
            held_back_line(&held("2026-01-01T11:30:00Z")),
            "held back      by 30m: the transaction of pid 7 (\"import\") open since 2026-01-01T11:30:00+00:00"
        );
        let long = held_back_line(&held("2026-01-01T10:00:00Z"));
        assert!(long.starts_with("held back      by 2h: "), "{long}");
        assert!(long.ends_with("\nwarn: a transaction open for over an hour holds the partial window back; each partial resends what changed since it began"), "{long}");
    }
}
