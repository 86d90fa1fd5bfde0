//! Installs a bundle's files into the receiver's file sets: each through a temporary name
//! and a rename, so no reader ever sees half a file; `overwrite = false` keeps what exists.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::Context;
use pgferry::settings::receiver::ReceiverFileSet;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Installed {
    pub written: u64,
    pub kept: u64,
    pub bytes: u64,
}

/// Installs one file; `relative` was checked by the bundle reader (no `..`, not absolute).
pub fn file(
    set: &ReceiverFileSet,
    relative: &str,
    reader: &mut dyn Read,
    installed: &mut Installed,
) -> anyhow::Result<()> {
    // The first call comes right after the commit; later ones are mid-install.
    fail::fail_point!("receiver-install", |_| pgferry::process::kill_self());
    let dest = set.dir.join(relative);
    if !set.overwrite && dest.exists() {
        installed.kept += 1;
        return Ok(());
    }
    let parent = dest
        .parent()
        .context("a file to install has no parent directory")?;
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let file_name = dest
        .file_name()
        .context("a file to install has no name")?
        .to_string_lossy();
    let temp = parent.join(format!(".{file_name}.pgferry-tmp"));
    match write_then_rename(reader, &temp, &dest) {
        Ok(bytes) => {
            installed.written += 1;
            installed.bytes += bytes;
            Ok(())
        }
        Err(err) => {
            let _ = std::fs::remove_file(&temp);
            Err(err).with_context(|| format!("install {} (file set {})", dest.display(), set.name))
        }
    }
}

fn write_then_rename(reader: &mut dyn Read, temp: &Path, dest: &Path) -> io::Result<u64> {
    let mut file = File::create(temp)?;
    let bytes = io::copy(reader, &mut file)?;
    file.flush()?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(temp, dest)?;
    Ok(bytes)
}

/// Deletes temporary files an interrupted install left in a set's directory tree.
pub fn remove_leftovers(dir: &Path) -> anyhow::Result<u64> {
    let mut removed = 0;
    if !dir.exists() {
        return Ok(0);
    }
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.with_context(|| format!("scan {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy();
        if entry.file_type().is_file() && name.starts_with('.') && name.ends_with(".pgferry-tmp") {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("remove {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}
