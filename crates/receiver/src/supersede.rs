//! Guarantee 4: a complete bundle replaces the data of its tables, so every bundle pending
//! before the newest complete one is obsolete. Those are recorded in the ledger as
//! superseded and archived without being loaded (a refused or damaged one included), and
//! the load starts at that complete. A receiver that fell behind by many bundles catches
//! up the same way, without loading what the complete replaces.

use std::path::Path;

use anyhow::Context;
use pgferry::bundle::hashing::HashingReader;
use pgferry::bundle::reader::{Verified, VerifyError};
use pgferry::bundle::{BundleName, Kind};
use pgferry::pg::Psql;
use pgferry::seal::OpenKeys;
use pgferry::settings::ReceiverSettings;

use crate::inbox;
use crate::load::ledger;

/// What to load, after the obsolete bundles went.
pub struct Queue {
    /// The bundles to load, oldest first.
    pub bundles: Vec<BundleName>,
    /// The complete bundle the queue starts at, verified already: it was checked before
    /// anything older was superseded, so a damaged complete supersedes nothing.
    pub start: Option<(BundleName, Verified)>,
    /// Completes that failed verification on the way (moved to `failed/`), and why.
    pub rejected: Vec<VerifyError>,
}

/// Supersedes every pending bundle older than the newest complete one that verifies.
/// `known` is a complete verified already (by the store's poll), not read again.
pub fn start_at_newest_complete(
    settings: &ReceiverSettings,
    mut pending: Vec<BundleName>,
    mut known: Option<(BundleName, Verified)>,
    keys: &OpenKeys,
) -> anyhow::Result<Queue> {
    let inbox_dir = &settings.inbox.dir;
    let mut rejected = Vec::new();
    while let Some(index) = pending.iter().rposition(|n| n.kind == Kind::Complete) {
        let name = pending.remove(index);
        let checked = match known.take() {
            Some((known_name, verified)) if known_name == name => Ok(verified),
            _ => inbox::verify_or_reject(inbox_dir, &name, keys)?,
        };
        match checked {
            Ok(verified) => {
                let older: Vec<BundleName> = pending.drain(..index).collect();
                supersede(settings, &older)?;
                return Ok(Queue {
                    bundles: std::iter::once(name.clone()).chain(pending).collect(),
                    start: Some((name, verified)),
                    rejected,
                });
            }
            Err(reason) => rejected.push(reason),
        }
    }
    Ok(Queue {
        bundles: pending,
        start: None,
        rejected,
    })
}

/// Records `older` as superseded, then archives each in `superseded/`. A crash between the
/// two leaves them pending and recorded; the next load records nothing new and archives them.
fn supersede(settings: &ReceiverSettings, older: &[BundleName]) -> anyhow::Result<()> {
    if older.is_empty() {
        return Ok(());
    }
    let inbox_dir = &settings.inbox.dir;
    let mut rows = Vec::with_capacity(older.len());
    for name in older {
        rows.push(ledger::Superseded {
            name,
            sha256: file_sha256(&inbox_dir.join(name.file_name()))?,
        });
    }
    ledger::record_superseded(&Psql::new(settings.target.connection()), &rows)?;
    for name in older {
        inbox::move_to(inbox_dir, name, inbox::SUPERSEDED)?;
        tracing::info!(bundle = %name, "superseded: a newer complete bundle is pending; not loaded");
    }
    Ok(())
}

fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut reader = HashingReader::new(file);
    std::io::copy(&mut reader, &mut std::io::sink())
        .with_context(|| format!("read {}", path.display()))?;
    Ok(reader.finish().0)
}
