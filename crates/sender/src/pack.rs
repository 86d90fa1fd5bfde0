//! Puts file sets into a bundle: every file of a set (complete bundles), or a chosen
//! subset (partial bundles), under `files/<set>/<relative path>`.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use globset::{Glob, GlobSet, GlobSetBuilder};
use pgferry::bundle::manifest::FileSetManifest;
use pgferry::bundle::writer::BundleWriter;
use pgferry::bundle::Manifest;
use pgferry::pg::ident::quote_ident;
use pgferry::settings::sender::SenderFileSet;
use pgferry::settings::SenderSettings;

use crate::selection::Selected;
use crate::snapshot::Snapshot;
use crate::window::Window;

/// One file found in a set.
pub struct FoundFile {
    pub path: PathBuf,
    pub relative: String,
}

fn include_set(set: &SenderFileSet) -> anyhow::Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in &set.include {
        builder.add(
            Glob::new(pattern)
                .with_context(|| format!("file set {}: include pattern {pattern:?}", set.name))?,
        );
    }
    Ok(builder.build()?)
}

/// Every regular file of the set that its `include` patterns take, sorted by path.
/// Symbolic links are skipped with a warning: following them could leave the set's dir.
pub fn list(set: &SenderFileSet) -> anyhow::Result<Vec<FoundFile>> {
    let include = include_set(set)?;
    let mut found = Vec::new();
    for entry in walkdir::WalkDir::new(&set.dir)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry
            .with_context(|| format!("read file set {} in {}", set.name, set.dir.display()))?;
        if entry.file_type().is_symlink() {
            tracing::warn!(set = %set.name, path = %entry.path().display(), "skipping a symbolic link");
            continue;
        }
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = relative_name(&set.dir, entry.path())?;
        if include.is_match(&relative) {
            found.push(FoundFile {
                path: entry.path().to_path_buf(),
                relative,
            });
        }
    }
    Ok(found)
}

fn relative_name(dir: &Path, path: &Path) -> anyhow::Result<String> {
    let relative = path
        .strip_prefix(dir)
        .with_context(|| format!("{} is outside {}", path.display(), dir.display()))?;
    match relative.to_str() {
        Some(text) => Ok(text.to_string()),
        None => bail!(
            "file name {} is not UTF-8; rename it to send it",
            path.display()
        ),
    }
}

/// Appends `files` of `set` to the bundle and returns the set's manifest record.
pub fn append<W: Write + Send + 'static>(
    writer: &mut BundleWriter<W>,
    set: &SenderFileSet,
    files: &[FoundFile],
) -> anyhow::Result<FileSetManifest> {
    let mut bytes = 0;
    for file in files {
        let handle = std::fs::File::open(&file.path)
            .with_context(|| format!("open {}", file.path.display()))?;
        let meta = handle
            .metadata()
            .with_context(|| format!("stat {}", file.path.display()))?;
        let entry = format!("files/{}/{}", set.name, file.relative);
        let mtime = u64::try_from(meta.mtime()).ok();
        writer
            .append_reader(&entry, meta.len(), handle, mtime)
            .with_context(|| format!("pack {}", file.path.display()))?;
        bytes += meta.len();
    }
    Ok(FileSetManifest {
        name: set.name.clone(),
        files: files.len() as u64,
        bytes,
        missing: Vec::new(),
    })
}

/// The files of a partial bundle: those modified in `(start, end]`, plus those named by
/// `referenced` (values of `referenced_by` columns of the sent rows). Referenced names
/// that do not exist, or that would leave the set's directory, come back as missing.
pub fn list_partial(
    set: &SenderFileSet,
    start: std::time::SystemTime,
    end: std::time::SystemTime,
    referenced: &std::collections::BTreeSet<String>,
) -> anyhow::Result<(Vec<FoundFile>, Vec<String>)> {
    let mut chosen: std::collections::BTreeMap<String, PathBuf> = std::collections::BTreeMap::new();
    for file in list(set)? {
        let modified = std::fs::symlink_metadata(&file.path)
            .and_then(|m| m.modified())
            .with_context(|| format!("stat {}", file.path.display()))?;
        if modified > start && modified <= end {
            chosen.insert(file.relative, file.path);
        }
    }
    let mut missing = Vec::new();
    for name in referenced {
        let safe =
            pgferry::bundle::entry_path::classify(&format!("files/{}/{name}", set.name)).is_ok();
        let path = set.dir.join(name);
        let is_file = std::fs::symlink_metadata(&path)
            .map(|m| m.is_file())
            .unwrap_or(false);
        if safe && is_file {
            chosen.insert(name.clone(), path);
        } else {
            if !safe {
                tracing::warn!(set = %set.name, name = %name, "a referenced file name would leave the set's directory; not sent");
            }
            missing.push(name.clone());
        }
    }
    let files = chosen
        .into_iter()
        .map(|(relative, path)| FoundFile { path, relative })
        .collect();
    Ok((files, missing))
}

/// Per file set, the file names that `referenced_by` columns of the sent rows hold.
pub fn referenced_names(
    settings: &SenderSettings,
    selected: &[Selected],
    snapshot: &mut Snapshot,
) -> anyhow::Result<Vec<BTreeSet<String>>> {
    let mut per_set = Vec::new();
    for set in &settings.files {
        let mut names = BTreeSet::new();
        if set.partial {
            for column in &set.referenced_by {
                let Some(table) = selected.iter().find(|s| s.table == column.table) else {
                    continue;
                };
                let col = format!("t0.{}", quote_ident(&column.column));
                let sql = format!(
                    "SELECT json_agg(DISTINCT {col}::text) FROM {} AS t0 WHERE ({}) AND {col} IS NOT NULL AND {col}::text <> ''",
                    table.table.quoted(),
                    table.predicate
                );
                let values: Option<Vec<String>> = snapshot
                    .json(&sql)
                    .with_context(|| format!("read file names from {column}"))?;
                names.extend(values.unwrap_or_default());
            }
        }
        per_set.push(names);
    }
    Ok(per_set)
}

/// The files of the partial file sets: changed in the window, or named by sent rows.
pub fn append_partial<W: Write + Send + 'static>(
    settings: &SenderSettings,
    window: Window,
    referenced: &[BTreeSet<String>],
    manifest: &mut Manifest,
    writer: &mut BundleWriter<W>,
) -> anyhow::Result<()> {
    let start = std::time::SystemTime::from(window.start);
    let end = std::time::SystemTime::from(window.end);
    for (set, names) in settings.files.iter().zip(referenced) {
        if !set.partial {
            continue;
        }
        let (files, missing) = list_partial(set, start, end, names)?;
        let mut record = append(writer, set, &files)?;
        if !missing.is_empty() {
            tracing::warn!(set = %set.name, missing = missing.len(), "referenced files do not exist; listed as missing in the manifest");
        }
        record.missing = missing;
        manifest.file_sets.push(record);
    }
    Ok(())
}
