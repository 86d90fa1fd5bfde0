//! The inbox on disk: pending bundles at the top, `applied/`, `superseded/` and `failed/`
//! beside them.
//! Temporary upload names are never listed, so a half-uploaded bundle is never seen.

use std::path::{Path, PathBuf};

use anyhow::Context;
use pgferry::bundle::reader::{verify, Verified, VerifyError};
use pgferry::bundle::BundleName;
use pgferry::seal::OpenKeys;

pub const APPLIED: &str = "applied";
pub const FAILED: &str = "failed";
/// Bundles never loaded because a newer complete bundle replaced them.
pub const SUPERSEDED: &str = "superseded";

/// Bundles in `dir` whose names parse, oldest first.
pub fn list(dir: &Path) -> anyhow::Result<Vec<BundleName>> {
    let mut names = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(names),
        Err(err) => return Err(err).with_context(|| format!("list inbox {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("list inbox {}", dir.display()))?;
        if !entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            continue;
        }
        if let Some(name) = entry.file_name().to_str().and_then(BundleName::parse) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

pub fn pending(inbox: &Path) -> anyhow::Result<Vec<BundleName>> {
    list(inbox)
}

/// Moves a bundle from the inbox into `applied/` or `failed/`.
pub fn move_to(inbox: &Path, name: &BundleName, sub: &str) -> anyhow::Result<PathBuf> {
    let dir = inbox.join(sub);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let from = inbox.join(name.file_name());
    let to = dir.join(name.file_name());
    std::fs::rename(&from, &to)
        .with_context(|| format!("move {} to {}", from.display(), to.display()))?;
    Ok(to)
}

/// Moves a bundle that failed verification aside, with the reason next to it.
pub fn reject(inbox: &Path, name: &BundleName, reason: &str) -> anyhow::Result<PathBuf> {
    let to = move_to(inbox, name, FAILED)?;
    let note = to.with_extension("reason.txt");
    std::fs::write(&note, format!("{reason}\n"))
        .with_context(|| format!("write {}", note.display()))?;
    Ok(to)
}

/// Verifies a pending bundle (guarantees 2 and 13). One that fails is moved to `failed/`
/// with its reason, which comes back as the inner `Err`.
pub fn verify_or_reject(
    inbox: &Path,
    name: &BundleName,
    keys: &OpenKeys,
) -> anyhow::Result<Result<Verified, VerifyError>> {
    match verify(&inbox.join(name.file_name()), keys) {
        Ok(verified) => Ok(Ok(verified)),
        Err(err) => {
            let moved = reject(inbox, name, &err.to_string())?;
            tracing::error!(bundle = %name, moved_to = %moved.display(), "{err}");
            Ok(Err(err))
        }
    }
}
