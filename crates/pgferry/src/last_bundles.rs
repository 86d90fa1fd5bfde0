//! The last bundle of each kind that a side published or applied: its size and rows, kept
//! in the state dir for the metrics.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::bundle::Kind;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastBundles {
    pub complete: Option<BundleFacts>,
    pub partial: Option<BundleFacts>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFacts {
    pub bundle: String,
    /// The bundle file's size.
    pub bytes: u64,
    /// Rows of all its tables.
    pub rows: u64,
}

impl LastBundles {
    pub fn of(&self, kind: Kind) -> Option<&BundleFacts> {
        match kind {
            Kind::Complete => self.complete.as_ref(),
            Kind::Partial => self.partial.as_ref(),
        }
    }
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("last-bundles.json")
}

pub fn read(state_dir: &Path) -> anyhow::Result<LastBundles> {
    let file = path(state_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str(&text).with_context(|| format!("read {}", file.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(LastBundles::default()),
        Err(err) => Err(err).with_context(|| format!("read {}", file.display())),
    }
}

/// Records `facts` as the last bundle of `kind`.
pub fn record(state_dir: &Path, kind: Kind, facts: BundleFacts) -> anyhow::Result<()> {
    let mut last = read(state_dir)?;
    match kind {
        Kind::Complete => last.complete = Some(facts),
        Kind::Partial => last.partial = Some(facts),
    }
    crate::atomic_file::write(&path(state_dir), &serde_json::to_vec_pretty(&last)?)
}
