//! Old bundles that come back: the ledger says whether one holds anything the target does
//! not have already. An old bundle can come back by accident (copied by hand) or on purpose
//! (someone who may write to the inbox or store replays one the sender signed): either way
//! it must never roll the target back.

use pgferry::bundle::reader::{Problem, VerifyError};
use pgferry::bundle::{BundleName, Kind, Manifest};
use pgferry::seal::Refusal;

use super::ledger;

/// A partial whose window ends before the snapshot of the last applied complete, or a
/// complete taken before it (an old one put back: loading it would roll the target back).
pub fn is_obsolete(manifest: &Manifest, last_complete: Option<&ledger::Record>) -> bool {
    let Some(complete) = last_complete else {
        return false;
    };
    match (manifest.kind, manifest.window) {
        (Kind::Partial, Some(window)) => window.end < complete.snapshot_time,
        (Kind::Complete, _) => manifest.snapshot_time < complete.snapshot_time,
        (Kind::Partial, None) => false,
    }
}

/// An applied bundle that is pending again after newer ones were applied.
pub fn replayed(
    name: &BundleName,
    recorded: Option<&ledger::Record>,
    newest: Option<&ledger::Record>,
) -> Option<VerifyError> {
    let recorded = recorded.filter(|r| r.status == ledger::APPLIED)?;
    let newest = newest.filter(|n| n.bundle > recorded.bundle)?;
    Some(VerifyError {
        bundle: name.file_name(),
        problem: Problem::Untrusted(Refusal::Replayed {
            newer: newest.bundle.clone(),
        }),
    })
}
