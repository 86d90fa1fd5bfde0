//! The bundle that blocks the queue: one the target refused for its content (see
//! [`crate::load::refused`]). Bundles apply in order, so nothing after it loads until the target
//! is fixed or a complete bundle supersedes it. Kept in the state dir, since the refused
//! load's own transaction rolled back, so `receiver status` can say which, since when and why.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::cause::{self, Cause};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub bundle: String,
    /// The first refusal of this bundle.
    pub since: DateTime<Utc>,
    /// The last refusal's reason.
    pub reason: String,
}

/// What clears a block, for status and the job's error.
pub const CLEARED_BY: &str = "the next complete bundle supersedes it (run `sender complete` on the primary; for a schema change set [complete] on_schema_change = \"recreate\" on the receiver), or fix the target and the next load retries it";

/// The failure of a load that a refused bundle stopped: the refusal with its causes, then
/// what clears it; its cause tells the alert what to check.
pub fn blocking(err: anyhow::Error) -> anyhow::Error {
    cause::tag(
        anyhow::anyhow!(
            "{err:#}\nhint: the bundle stays pending and blocks the bundles after it; {CLEARED_BY}"
        ),
        Cause::BundleRefused,
    )
}

fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("blocked.json")
}

/// The current block, if any.
pub fn read(state_dir: &Path) -> anyhow::Result<Option<Blocked>> {
    let file = path(state_dir);
    match std::fs::read_to_string(&file) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("read {}", file.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("read {}", file.display())),
    }
}

/// Records that `bundle` was refused at `now`; a bundle refused again keeps its `since`.
pub fn record(
    state_dir: &Path,
    bundle: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Blocked> {
    let since = read(state_dir)?
        .filter(|b| b.bundle == bundle)
        .map_or(now, |b| b.since);
    let blocked = Blocked {
        bundle: bundle.to_string(),
        since,
        reason: reason.to_string(),
    };
    pgferry::atomic_file::write(&path(state_dir), &serde_json::to_vec_pretty(&blocked)?)?;
    Ok(blocked)
}

/// The queue moves again: the blocking bundle was applied or superseded.
pub fn clear(state_dir: &Path) -> anyhow::Result<()> {
    let file = path(state_dir);
    match std::fs::remove_file(&file) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("remove {}", file.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_refused_again_keeps_its_since_and_another_starts_anew() {
        let state = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let t1 = t0 + chrono::Duration::minutes(5);
        assert_eq!(read(state.path()).unwrap(), None);
        record(state.path(), "a", "first", t0).unwrap();
        let again = record(state.path(), "a", "second", t1).unwrap();
        assert_eq!((again.since, again.reason.as_str()), (t0, "second"));
        assert_eq!(read(state.path()).unwrap(), Some(again));
        assert_eq!(record(state.path(), "b", "other", t1).unwrap().since, t1);
        clear(state.path()).unwrap();
        clear(state.path()).unwrap();
        assert_eq!(read(state.path()).unwrap(), None);
    }
}
