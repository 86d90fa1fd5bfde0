//! Writes small state files so a crash leaves either the old or the new content.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// Writes `bytes` to a temporary sibling, fsyncs it, renames it over `path`.
pub fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .context("state file has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("create a temporary file in {}", dir.display()))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .with_context(|| format!("write {}", path.display()))?;
    temp.persist(path)
        .with_context(|| format!("replace {}", path.display()))?;
    Ok(())
}
