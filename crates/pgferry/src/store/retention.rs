//! What a store keeps (`[remote] keep_completes`): the newest complete bundles and every
//! bundle after the oldest of them. Anything older is replaced by a kept complete, so a
//! receiver that joins or fell behind starts from the newest complete and loses nothing.

use super::{Store, Stored};
use crate::bundle::{BundleName, Kind};

/// The bundles older than the oldest of the newest `keep_completes` complete bundles.
/// With fewer completes than that, nothing is old enough to go.
pub fn expired(stored: &[Stored], keep_completes: u32) -> Vec<BundleName> {
    let keep = usize::try_from(keep_completes).unwrap_or(usize::MAX).max(1);
    let mut completes: Vec<&BundleName> = stored
        .iter()
        .map(|s| &s.name)
        .filter(|name| name.kind == Kind::Complete)
        .collect();
    completes.sort();
    let Some(oldest_kept) = completes.len().checked_sub(keep).map(|i| completes[i]) else {
        return Vec::new();
    };
    stored
        .iter()
        .map(|s| s.name.clone())
        .filter(|name| name < oldest_kept)
        .collect()
}

/// Deletes the expired bundles, oldest first; returns them. Run after a successful publish.
pub fn apply(store: &dyn Store, keep_completes: u32) -> anyhow::Result<Vec<BundleName>> {
    let mut expired = expired(&store.list()?, keep_completes);
    expired.sort();
    for name in &expired {
        store.delete(name)?;
        tracing::info!(store = %store.label(), bundle = %name, keep_completes, "deleted: older than the complete bundles the store keeps");
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;

    fn at(minutes: i64, kind: Kind) -> Stored {
        let base: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        Stored {
            name: BundleName::new(base + Duration::minutes(minutes), kind),
            bytes: 1,
        }
    }

    #[test]
    fn keeps_the_newest_completes_and_everything_after_the_oldest_of_them() {
        use Kind::{Complete as C, Partial as P};
        let stored = vec![
            at(0, P),
            at(1, C),
            at(2, P),
            at(3, C),
            at(4, P),
            at(5, C),
            at(6, P),
        ];
        let names = |idx: &[usize]| {
            idx.iter()
                .map(|&i| stored[i].name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(expired(&stored, 2), names(&[0, 1, 2]));
        assert_eq!(expired(&stored, 1), names(&[0, 1, 2, 3, 4]));
        assert_eq!(expired(&stored, 3), names(&[0]));
        assert!(expired(&stored, 4).is_empty());
        assert!(expired(&[at(0, P), at(1, P)], 1).is_empty());
    }
}
