//! Reads a bundle back: `verify` checks all of it before anything is touched (guarantees 2
//! and 13),
//! `with_entries` streams the entries again for the load and re-checks each checksum as
//! it goes, so the load commits only bytes that were verified.
//!
//! Both passes open the file through [`unpack`]: it is read, hashed, decrypted and
//! decompressed on threads of their own while the calling thread hashes the entries.

use std::io::{self, Read};
use std::path::Path;

use super::entry_path::{classify, EntryKind};
use super::hashing::HashingReader;
use super::naming::BundleName;
use super::unpack::{self, Decompressed, OpenError};
use super::{Entry, Manifest, FORMAT_VERSION, MANIFEST_PATH};
use crate::pipe::ReadAhead;
use crate::seal::{Identities, KeyId, OpenKeys, Refusal};

/// The largest manifest accepted, so a crafted bundle cannot exhaust memory.
const MANIFEST_LIMIT: u64 = 64 * 1024 * 1024;
/// The largest signature accepted: a minisig file is a few hundred bytes.
const SIGNATURE_LIMIT: u64 = 64 * 1024;

/// A bundle that must not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bundle {bundle} failed verification: {problem}")]
pub struct VerifyError {
    pub bundle: String,
    pub problem: Problem,
}

/// What is wrong with a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Damaged: it does not hold what its manifest says, or cannot be read.
    #[error("{0}")]
    Damaged(String),
    /// Not to be trusted or not to be opened by this receiver's `[bundle]` keys.
    #[error("{0}")]
    Untrusted(#[from] Refusal),
}

/// A verified bundle.
#[derive(Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// SHA-256 of the bundle file itself.
    pub sha256: String,
    pub size: u64,
    /// The trusted key it is signed by, when the receiver has trusted keys.
    pub signed_by: Option<KeyId>,
    /// What opens it again for the load, when it is encrypted.
    identities: Identities,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("manifest", &self.manifest.name)
            .field("sha256", &self.sha256)
            .field("size", &self.size)
            .field("signed_by", &self.signed_by)
            .finish_non_exhaustive()
    }
}

/// Bundles a load refused and moved aside, each with why; one error, so one alert.
#[derive(Debug, thiserror::Error)]
#[error("{}\nhint: the bundle was moved to {}/failed; run `sender complete` on the primary so the target catches up", lines(.refusals), .inbox.display())]
pub struct Rejected {
    pub refusals: Vec<VerifyError>,
    pub inbox: std::path::PathBuf,
}

impl Rejected {
    /// Whether any was refused for its signature or encryption rather than damage.
    pub fn any_untrusted(&self) -> bool {
        self.refusals
            .iter()
            .any(|r| matches!(r.problem, Problem::Untrusted(_)))
    }
}

fn lines(refusals: &[VerifyError]) -> String {
    refusals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn bundle_label(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Checks every entry, the manifest, each size and checksum, and the codec's own checksum;
/// with trusted keys, the manifest's signature (which covers all of it, name and kind
/// included); and opens an encrypted bundle with the identities.
pub fn verify(path: &Path, keys: &OpenKeys) -> Result<Verified, VerifyError> {
    let bundle = bundle_label(path);
    let fail = |problem: String| VerifyError {
        bundle: bundle.clone(),
        problem: Problem::Damaged(problem),
    };
    let io_fail = |err: io::Error| VerifyError {
        bundle: bundle.clone(),
        problem: Problem::Damaged(format!("cannot read it: {err}")),
    };
    let refuse = |refusal: Refusal| VerifyError {
        bundle: bundle.clone(),
        problem: Problem::Untrusted(refusal),
    };
    let mut archive = unpack::open(path, &keys.identities).map_err(|err| match err {
        OpenError::Refused(refusal) => refuse(refusal),
        OpenError::Io(err) => io_fail(err),
    })?;
    let mut seen: Vec<Entry> = Vec::new();
    let mut manifest: Option<(Manifest, Vec<u8>)> = None;
    let mut signature: Option<Vec<u8>> = None;
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
        if kind == EntryKind::Signature {
            if manifest.is_none() || signature.is_some() {
                return Err(fail(
                    "the signature is not the one entry after the manifest".into(),
                ));
            }
            signature =
                Some(read_small(&mut entry, SIGNATURE_LIMIT, "the signature").map_err(fail)?);
            continue;
        }
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
            let text = read_small(&mut entry, MANIFEST_LIMIT, "the manifest").map_err(fail)?;
            let parsed = serde_json::from_slice(&text)
                .map_err(|e| fail(format!("the manifest is not valid: {e}")))?;
            manifest = Some((parsed, text));
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
    let (manifest, text) =
        manifest.ok_or_else(|| fail("it has no manifest (truncated?)".into()))?;
    let (sha256, size) = unpack::finish(archive).map_err(|e| fail(e.to_string()))?;
    // The signature first: a forger's manifest can match its entries, never the key.
    let signed_by = if keys.trusted.is_empty() {
        None
    } else {
        Some(
            keys.trusted
                .check(&text, signature.as_deref(), &bundle)
                .map_err(refuse)?,
        )
    };
    check_manifest(&manifest, &seen, path).map_err(fail)?;
    Ok(Verified {
        manifest,
        sha256,
        size,
        signed_by,
        identities: keys.identities.clone(),
    })
}

/// Reads a manifest or signature entry, refusing one over `limit` bytes so a crafted
/// bundle cannot exhaust memory.
fn read_small<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, String> {
    // The header's size first: a crafted one is refused without reading its bytes.
    if entry.size() > limit {
        return Err(format!("{what} is {} bytes, over the limit", entry.size()));
    }
    let mut bytes = Vec::new();
    entry
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    Ok(bytes)
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
            EntryKind::Manifest | EntryKind::Signature => None,
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
    verified: &Verified,
    read: impl FnOnce(&mut EntryStream<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let manifest = &verified.manifest;
    let mut archive = unpack::open(path, &verified.identities).map_err(|err| match err {
        OpenError::Refused(refusal) => anyhow::Error::new(refusal),
        OpenError::Io(err) => anyhow::Error::new(err),
    })?;
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
    verified: &Verified,
    mut visit: impl FnMut(&EntryKind, &Entry, &mut dyn Read) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    with_entries(path, verified, |stream| {
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
            if matches!(kind, EntryKind::Manifest | EntryKind::Signature) {
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
mod sealed_tests;
#[cfg(test)]
mod tests;
