//! Which `psql` and `pg_dump` to run. On Debian, `/usr/bin/pg_dump` and `/usr/bin/psql`
//! are `pg_wrapper`, a Perl script that picks a PostgreSQL version on every call: 50 to
//! 300 ms each, more than many of the queries themselves. When the program on `PATH` is
//! that wrapper, pgferry makes the wrapper's own choice once (the newest installed
//! version, which is what it picks for `pg_dump` and, with no local cluster, for `psql`)
//! and runs that binary directly. Anything else on `PATH`, or `PGCLUSTER` set (the
//! operator chose a cluster for the wrapper), is run as it is.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where Debian installs each major version's client programs.
const VERSIONED_ROOT: &str = "/usr/lib/postgresql";

pub fn pg_dump() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| resolve("pg_dump"))
}

pub fn psql() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| resolve("psql"))
}

/// The program to run for `name` (`pg_dump`, `psql`, `pg_restore`, ...). Uncached:
/// [`pg_dump`] and [`psql`] keep their answer for the hot paths.
pub fn resolve(name: &str) -> PathBuf {
    if std::env::var_os("PGCLUSTER").is_some() {
        return PathBuf::from(name);
    }
    let Some(found) = crate::process::find_program(name) else {
        return PathBuf::from(name);
    };
    if !is_pg_wrapper(&found) {
        return PathBuf::from(name);
    }
    newest_versioned(Path::new(VERSIONED_ROOT), name).unwrap_or_else(|| PathBuf::from(name))
}

fn is_pg_wrapper(path: &Path) -> bool {
    std::fs::canonicalize(path)
        .ok()
        .and_then(|real| real.file_name().map(|n| n == "pg_wrapper"))
        .unwrap_or(false)
}

/// `root/<major>/bin/name` of the highest major version that has it.
fn newest_versioned(root: &Path, name: &str) -> Option<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let Some(major) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let program = entry.path().join("bin").join(name);
        if program.is_file() && best.as_ref().is_none_or(|(b, _)| major > *b) {
            best = Some((major, program));
        }
    }
    best.map(|(_, program)| program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_major_version_with_the_program_wins() {
        let root = tempfile::tempdir().unwrap();
        for (major, has) in [("9", true), ("15", true), ("16", false), ("notes", true)] {
            let bin = root.path().join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if has {
                std::fs::write(bin.join("pg_dump"), "").unwrap();
            }
        }
        assert_eq!(
            newest_versioned(root.path(), "pg_dump"),
            Some(root.path().join("15/bin/pg_dump"))
        );
        assert_eq!(newest_versioned(root.path(), "psql"), None);
    }

    #[test]
    fn only_the_wrapper_is_bypassed() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("pg_wrapper");
        std::fs::write(&wrapper, "#!/usr/bin/perl").unwrap();
        let link = dir.path().join("psql");
        std::os::unix::fs::symlink(&wrapper, &link).unwrap();
        assert!(is_pg_wrapper(&link));
        let own = dir.path().join("pg_dump");
        std::fs::write(&own, "#!/bin/sh").unwrap();
        assert!(!is_pg_wrapper(&own));
    }
}
