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
