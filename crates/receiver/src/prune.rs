//! The retention policy: applied and superseded bundles go when older than their kind's
//! retention, failed ones when older than the longest retention. Pending bundles are never
//! touched.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::bundle::{BundleName, Kind};
use pgferry::settings::ReceiverSettings;

use crate::inbox;

/// Deletes what the policy says is old at `now`; returns the deleted file names.
pub fn prune(settings: &ReceiverSettings, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
    let retention = |kind: Kind| match kind {
        Kind::Complete => settings.retention.complete.as_chrono(),
        Kind::Partial => settings.retention.partial.as_chrono(),
    };
    let longest = retention(Kind::Complete).max(retention(Kind::Partial));
    let mut deleted = Vec::new();
    for archive in [inbox::APPLIED, inbox::SUPERSEDED] {
        let archive = settings.inbox.dir.join(archive);
        for name in inbox::list(&archive)? {
            if now - name.created > retention(name.kind) {
                delete(&archive.join(name.file_name()), &mut deleted)?;
            }
        }
    }
    let failed = settings.inbox.dir.join(inbox::FAILED);
    if let Ok(entries) = std::fs::read_dir(&failed) {
        for entry in entries {
            let entry = entry.with_context(|| format!("list {}", failed.display()))?;
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            if now - age_origin(&path)? > longest {
                delete(&path, &mut deleted)?;
            }
        }
    }
    Ok(deleted)
}

/// A failed file's age counts from the bundle's creation when its name tells, else from
/// its modification time (a note, or a file with a foreign name).
fn age_origin(path: &Path) -> anyhow::Result<DateTime<Utc>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bundle_name = name
        .strip_suffix(".reason.txt")
        .map(|b| format!("{b}.gz"))
        .unwrap_or(name);
    if let Some(parsed) = BundleName::parse(&bundle_name) {
        return Ok(parsed.created);
    }
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("stat {}", path.display()))?;
    Ok(modified.into())
}

fn delete(path: &Path, deleted: &mut Vec<String>) -> anyhow::Result<()> {
    std::fs::remove_file(path).with_context(|| format!("delete {}", path.display()))?;
    tracing::info!(file = %path.display(), "pruned");
    deleted.push(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    Ok(())
}
