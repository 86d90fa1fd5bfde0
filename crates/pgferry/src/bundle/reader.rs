//! Reads a bundle back: `verify` checks all of it before anything is touched (guarantee 2),
//! `with_entries` streams the entries again for the load and re-checks each checksum as
//! it goes, so the load commits only bytes that were verified.
//!
//! Both passes read the file on a thread of their own ([`ReadAhead`]), which also hashes
//! the file itself, while the calling thread decompresses and hashes the entries.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;

use super::codec::{Codec, Decoder};
use super::entry_path::{classify, EntryKind};
use super::hashing::HashingReader;
use super::naming::BundleName;
use super::{Entry, Manifest, FORMAT_VERSION, MANIFEST_PATH};
use crate::pipe::ReadAhead;

/// The largest manifest accepted, so a crafted bundle cannot exhaust memory.
const MANIFEST_LIMIT: u64 = 64 * 1024 * 1024;

/// A bundle that must not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bundle {bundle} failed verification: {problem}")]
pub struct VerifyError {
    pub bundle: String,
    pub problem: String,
}

/// A verified bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// SHA-256 of the bundle file itself.
    pub sha256: String,
    pub size: u64,
}

/// Three threads: one reads and hashes the file, one decompresses, and the caller's
/// parses the tar stream and hashes the entries.
type Archive = tar::Archive<ReadAhead<Decompressed>>;

/// The decompressed stream. At its end it checks that nothing follows the compressed
/// stream in the file, and keeps the file's SHA-256 and size.
struct Decompressed {
    decoder: Option<Decoder<ReadAhead<HashingReader<File>>>>,
    file: Option<(String, u64)>,
}

impl Read for Decompressed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(decoder) = self.decoder.as_mut() else {
            return Ok(0);
        };
        let n = decoder.read(buf)?;
        if n > 0 || buf.is_empty() {
            return Ok(n);
        }
        let mut input = self
            .decoder
            .take()
            .ok_or_else(|| io::Error::other("the decoder is gone"))?
            .into_inner()?;
        if !input.fill_buf()?.is_empty() {
            return Err(io::Error::other(
                "bytes after the end of the compressed stream",
            ));
        }
        self.file = Some(input.finish()?.finish());
        Ok(0)
    }
}

fn open(path: &Path) -> io::Result<Archive> {
    // The name says how the bundle is compressed; a name that is not a bundle's is read
    // as gzip, and `check_manifest` refuses it later.
    let codec = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BundleName::parse)
        .map_or(Codec::Gzip, |name| name.codec);
    let file = File::open(path)?;
    let input = ReadAhead::new(HashingReader::new(file));
    let decompressed = Decompressed {
        decoder: Some(Decoder::new(input, codec)?),
        file: None,
    };
    Ok(tar::Archive::new(ReadAhead::new(decompressed)))
}

fn bundle_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Checks every entry, the manifest, each size and checksum, and the codec's own checksum.
pub fn verify(path: &Path) -> Result<Verified, VerifyError> {
    let bundle = bundle_label(path);
    let fail = |problem: String| VerifyError {
        bundle: bundle.clone(),
        problem,
    };
    let io_fail = |err: io::Error| VerifyError {
        bundle: bundle.clone(),
        problem: format!("cannot read it: {err}"),
    };
    let mut archive = open(path).map_err(io_fail)?;
    let mut seen: Vec<Entry> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut section = Section::Schema;
    for entry in archive.entries().map_err(io_fail)? {
        let mut entry = entry.map_err(io_fail)?;
        let entry_path = String::from_utf8(entry.path_bytes().into_owned())
            .map_err(|_| fail("an entry path is not UTF-8".into()))?;
        let entry_type = entry.header().entry_type();
        if entry_type != tar::EntryType::Regular {
            return Err(fail(format!(
                "entry {entry_path:?} is a {}; links, directories and devices are refused",
                type_name(entry_type)
            )));
        }
        let kind = classify(&entry_path).map_err(|e| fail(e.to_string()))?;
        if manifest.is_some() {
            return Err(fail(format!(
                "entry {entry_path:?} comes after the manifest"
            )));
        }
        if let Some(now) = Section::of(&kind) {
            if now < section {
                return Err(fail(format!(
                    "entry {entry_path:?} comes after the {} entries",
                    section.name()
                )));
            }
            section = now;
        }
        if seen.iter().any(|e| e.path == entry_path)
            || (kind == EntryKind::Manifest && entry_path != MANIFEST_PATH)
        {
            return Err(fail(format!("entry {entry_path:?} appears twice")));
        }
        if kind == EntryKind::Manifest {
            if entry.size() > MANIFEST_LIMIT {
                return Err(fail(format!(
                    "the manifest is {} bytes, over the limit",
                    entry.size()
                )));
            }
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(io_fail)?;
            manifest = Some(
                serde_json::from_slice(&text)
                    .map_err(|e| fail(format!("the manifest is not valid: {e}")))?,
            );
            continue;
        }
        let mut hashing = HashingReader::new(&mut entry);
        io::copy(&mut hashing, &mut io::sink()).map_err(io_fail)?;
        let (sha256, size) = hashing.finish();
        seen.push(Entry {
            path: entry_path,
            size,
            sha256,
        });
    }
    let manifest = manifest.ok_or_else(|| fail("it has no manifest (truncated?)".into()))?;
    let (sha256, size) = finish_stream(archive).map_err(|e| fail(e.to_string()))?;
    check_manifest(&manifest, &seen, path).map_err(fail)?;
    Ok(Verified {
        manifest,
        sha256,
        size,
    })
}

/// The parts of a bundle, in the order they must come: the load reads the schema before
/// it opens the transaction and commits it before it installs the first file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Schema,
    Database,
    Files,
}

impl Section {
    fn of(kind: &EntryKind) -> Option<Section> {
        match kind {
            EntryKind::Manifest => None,
            EntryKind::Schema => Some(Section::Schema),
            EntryKind::Data | EntryKind::Rows | EntryKind::Changes => Some(Section::Database),
            EntryKind::File { .. } => Some(Section::Files),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Section::Schema => "schema",
            Section::Database => "data",
            Section::Files => "file",
        }
    }
}

/// Drains the rest of the compressed stream (so its checksum is checked) and refuses
/// trailing bytes.
fn finish_stream(archive: Archive) -> io::Result<(String, u64)> {
    let mut decompressed = archive.into_inner();
    let mut rest = Vec::new();
    decompressed.read_to_end(&mut rest)?;
    if rest.iter().any(|&b| b != 0) {
        return Err(io::Error::other("data after the end of the archive"));
    }
    decompressed
        .finish()?
        .file
        .ok_or_else(|| io::Error::other("the compressed stream did not end"))
}

fn check_manifest(manifest: &Manifest, seen: &[Entry], path: &Path) -> Result<(), String> {
    if manifest.format_version != FORMAT_VERSION {
        return Err(format!(
            "format version {} is not supported (this receiver reads version {FORMAT_VERSION}); hint: upgrade the receiver",
            manifest.format_version
        ));
    }
    let file_name = bundle_label(path);
    match BundleName::parse(&file_name) {
        Some(name) if name.kind == manifest.kind && manifest.name == file_name => {}
        _ => {
            return Err(format!(
                "its name does not match the manifest ({} bundle {:?})",
                manifest.kind, manifest.name
            ))
        }
    }
    for listed in &manifest.entries {
        match seen.iter().find(|e| e.path == listed.path) {
            None => {
                return Err(format!(
                    "entry {:?} is listed in the manifest but missing",
                    listed.path
                ))
            }
            Some(found) if found.size != listed.size => {
                return Err(format!(
                    "entry {:?} has {} bytes, the manifest says {}",
                    listed.path, found.size, listed.size
                ))
            }
            Some(found) if found.sha256 != listed.sha256 => {
                return Err(format!(
                    "entry {:?} has SHA-256 {}, the manifest says {}",
                    listed.path, found.sha256, listed.sha256
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.iter().find(|e| manifest.entry(&e.path).is_none()) {
        return Err(format!(
            "entry {:?} is not listed in the manifest",
            extra.path
        ));
    }
    for table in &manifest.tables {
        for schema in [&table.schema_pre, &table.schema_post]
            .into_iter()
            .flatten()
        {
            if manifest.entry(schema).is_none() {
                return Err(format!(
                    "schema entry {schema:?} of table {} is missing",
                    table.table
                ));
            }
        }
    }
    Ok(())
}

fn type_name(entry_type: tar::EntryType) -> &'static str {
    match entry_type {
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Directory => "directory",
        tar::EntryType::Fifo => "fifo",
        _ => "special entry",
    }
}

/// The entries of a verified bundle, read again in one pass for the load, pulled one at
/// a time: [`EntryStream::next_entry`] names the next entry and [`EntryStream::body`]
/// reads it. Each entry's checksum is checked when the next one is asked for, so a caller
/// that commits after asking for the first entry it does not load has only used bytes
/// that were verified. `read` runs with the stream; the entries it leaves are read and
/// checked after it returns.
pub fn with_entries<T>(
    path: &Path,
    manifest: &Manifest,
    read: impl FnOnce(&mut EntryStream<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let mut archive = open(path)?;
    let mut stream = EntryStream {
        bundle: bundle_label(path),
        manifest,
        entries: archive.entries()?,
        current: None,
        empty: io::empty(),
    };
    let value = read(&mut stream)?;
    while stream.next_entry()?.is_some() {}
    Ok(value)
}

/// See [`with_entries`].
pub struct EntryStream<'a> {
    bundle: String,
    manifest: &'a Manifest,
    entries: tar::Entries<'a, ReadAhead<Decompressed>>,
    /// The entry last named, hashed as it is read, and what the manifest says of it.
    current: Option<(
        HashingReader<tar::Entry<'a, ReadAhead<Decompressed>>>,
        &'a Entry,
    )>,
    empty: io::Empty,
}

/// Streams every entry but the manifest to `visit`, in archive order, and checks each one's
/// checksum against the (already verified) manifest once `visit` has read it.
pub fn read_entries(
    path: &Path,
    manifest: &Manifest,
    mut visit: impl FnMut(&EntryKind, &Entry, &mut dyn Read) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    with_entries(path, manifest, |stream| {
        while let Some((kind, entry)) = stream.next_entry()? {
            visit(&kind, entry, stream.body())?;
        }
        Ok(())
    })
}

impl<'a> EntryStream<'a> {
    /// Checks the entry before, then names the next one (the manifest's own is skipped),
    /// or None at the end of the bundle.
    pub fn next_entry(&mut self) -> anyhow::Result<Option<(EntryKind, &'a Entry)>> {
        self.check_current()?;
        for entry in self.entries.by_ref() {
            let entry = entry?;
            let entry_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let kind = classify(&entry_path)?;
            if kind == EntryKind::Manifest {
                continue;
            }
            let listed = self.manifest.entry(&entry_path).ok_or_else(|| {
                anyhow::anyhow!(
                    "bundle {} changed since it was verified: {entry_path:?} is not in the manifest",
                    self.bundle
                )
            })?;
            self.current = Some((HashingReader::new(entry), listed));
            return Ok(Some((kind, listed)));
        }
        Ok(None)
    }

    /// The bytes of the entry last named (nothing before the first).
    pub fn body(&mut self) -> &mut dyn Read {
        match self.current.as_mut() {
            Some((reader, _)) => reader,
            None => &mut self.empty,
        }
    }

    /// Reads what is left of the current entry and compares its checksum.
    fn check_current(&mut self) -> anyhow::Result<()> {
        let Some((mut reader, listed)) = self.current.take() else {
            return Ok(());
        };
        io::copy(&mut reader, &mut io::sink())?;
        let (sha256, _) = reader.finish();
        if sha256 != listed.sha256 {
            anyhow::bail!(
                "bundle {} changed since it was verified: entry {:?} has another checksum",
                self.bundle,
                listed.path
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
