//! The sender's partial high-water mark: where the next partial window starts. It moves
//! only after a bundle was published, so a failed run never skips data (guarantee 4).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Rows changed up to here have been sent.
    pub high_water_mark: DateTime<Utc>,
    /// The bundle that moved it.
    pub bundle: String,
    /// The transaction that kept the mark short of its bundle's snapshot, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_back: Option<HeldBack>,
}

/// A transaction in progress at a bundle's snapshot. Its rows commit later, stamped with a
/// `changed_at` from before the snapshot (`now()` is the transaction's start), so the mark
/// stays at its start until it ends (guarantee 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBack {
    /// Its backend's process id on the source.
    pub pid: i32,
    pub application_name: String,
    /// When it began: where the mark stays.
    pub since: DateTime<Utc>,
    /// Where the mark would be without it: the bundle's snapshot.
    pub snapshot: DateTime<Utc>,
}

impl HeldBack {
    /// How far the mark stays behind the snapshot.
    pub fn by(&self) -> chrono::Duration {
        self.snapshot - self.since
    }

    /// Held back long enough that `check` and `status` warn: each partial re-sends every
    /// row changed since the transaction began.
    pub fn is_long(&self) -> bool {
        self.by() > chrono::Duration::hours(1)
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("watermark.json")
}

pub fn read(state_dir: &Path) -> anyhow::Result<Option<Watermark>> {
    let file = path(state_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("read high-water mark {}", file.display())
            })?))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("read high-water mark {}", file.display())),
    }
}

pub fn record(state_dir: &Path, watermark: &Watermark) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(watermark)?;
    crate::atomic_file::write(&path(state_dir), &json)
}
