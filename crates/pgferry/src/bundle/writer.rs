//! Writes a bundle as a stream: tar entries into the encoder into whatever `Write` the
//! caller gives (an SFTP file on the sender). Nothing is staged on disk; the only buffer is
//! one dump part, of bounded size, because tar must know an entry's size before its data.
//!
//! The compressed bytes go to `out` on a thread of their own ([`WriteBehind`]): the age
//! encryption of a sealed bundle, hashing it, and the upload's own encryption and network
//! waits overlap with compression. A sealed bundle's manifest is signed as it is written.

use std::io::{self, Read, Write};

use chrono::{DateTime, Utc};

use super::codec::{Compression, Encoder};
use super::entry_path::{classify, EntryKind};
use super::hashing::{sha256_hex, HashingReader, HashingWriter};
use super::{Entry, Manifest, MANIFEST_PATH};
use crate::pipe::WriteBehind;
use crate::seal::{Encrypting, Seal, Signer, SIGNATURE_PATH};

/// Size of one dump part. While one part is compressed, `pg_dump` keeps writing into the
/// read-ahead behind it ([`crate::pipe`]), which holds about as much: with parts much
/// bigger than that, `pg_dump` would wait for each compression and the two would take
/// turns instead of running at once (measured: 16 MiB parts cost 0.5 s per 200 MB).
pub const PART_SIZE: usize = 4 * 1024 * 1024;

pub struct BundleWriter<W: Write + Send + 'static> {
    tar: tar::Builder<Encoder<WriteBehind<Encrypting<HashingWriter<W>>>>>,
    signer: Option<std::sync::Arc<Signer>>,
    entries: Vec<Entry>,
    mtime: u64,
    buffer: Vec<u8>,
    /// Tries a sample of each file, to store the ones that do not compress.
    probe: flate2::Compress,
}

/// How much of a file is tried before deciding whether to compress it.
const SAMPLE: u64 = 16 * 1024;

/// What a finished bundle looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub sha256: String,
    pub size: u64,
}

impl<W: Write + Send + 'static> BundleWriter<W> {
    /// A bundle neither signed nor encrypted.
    pub fn new(out: W, created: DateTime<Utc>, compression: Compression) -> io::Result<Self> {
        Self::sealed(out, created, compression, &Seal::default())
    }

    /// A bundle signed and encrypted as `seal` says (each only when it has keys).
    pub fn sealed(
        out: W,
        created: DateTime<Utc>,
        compression: Compression,
        seal: &Seal,
    ) -> io::Result<Self> {
        let encrypting = Encrypting::new(HashingWriter::new(out), &seal.recipients)?;
        let encoder = Encoder::new(WriteBehind::new(encrypting), compression)?;
        let mut tar = tar::Builder::new(encoder);
        tar.mode(tar::HeaderMode::Deterministic);
        Ok(BundleWriter {
            tar,
            signer: seal.signer.clone(),
            entries: Vec::new(),
            mtime: u64::try_from(created.timestamp()).unwrap_or(0),
            buffer: Vec::new(),
            probe: flate2::Compress::new(flate2::Compression::fast(), false),
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Appends an entry whose bytes are in memory.
    pub fn append_bytes(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.append_reader(path, bytes.len() as u64, bytes, None)
    }

    /// Appends an entry of exactly `size` bytes read from `reader`. A reader that ends
    /// early is an error, never a short entry.
    pub fn append_reader(
        &mut self,
        path: &str,
        size: u64,
        reader: impl Read,
        mtime: Option<u64>,
    ) -> io::Result<()> {
        let kind = classify(path).map_err(io::Error::other)?;
        // Files (images, mostly) are tried first: what does not compress is stored.
        let mut reader = reader;
        let mut sample = Vec::new();
        let compressible = match kind {
            EntryKind::File { .. } => {
                (&mut reader).take(SAMPLE).read_to_end(&mut sample)?;
                self.compresses(&sample)
            }
            _ => true,
        };
        self.tar.get_mut().expect_compressible(compressible)?;
        let reader = io::Cursor::new(sample).chain(reader);
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(mtime.unwrap_or(self.mtime));
        let mut hashing = HashingReader::new(Exact {
            inner: reader,
            remaining: size,
            path,
        });
        self.tar.append_data(&mut header, path, &mut hashing)?;
        let (sha256, read) = hashing.finish();
        debug_assert_eq!(read, size);
        self.entries.push(Entry {
            path: path.to_string(),
            size,
            sha256,
        });
        Ok(())
    }

    /// Whether `sample` shrinks by more than a few percent at the fastest level.
    fn compresses(&mut self, sample: &[u8]) -> bool {
        if sample.len() < 1024 {
            return true;
        }
        self.probe.reset();
        // Room for what deflate's fastest level makes of noise: a few percent more.
        let mut out = Vec::with_capacity(sample.len() * 2 + 1024);
        match self
            .probe
            .compress_vec(sample, &mut out, flate2::FlushCompress::Finish)
        {
            Ok(flate2::Status::StreamEnd) => out.len() < sample.len() / 100 * 97,
            // No room even then: it certainly does not shrink.
            Ok(_) => false,
            Err(_) => true,
        }
    }

    /// Splits a stream into entries `{prefix}{n:06}{suffix}` of at most `part_size` bytes and
    /// returns their paths. An empty stream still makes one (empty) part.
    pub fn append_parts(
        &mut self,
        prefix: &str,
        suffix: &str,
        mut reader: impl Read,
        part_size: usize,
    ) -> io::Result<Vec<String>> {
        let mut paths = Vec::new();
        let mut buffer = std::mem::take(&mut self.buffer);
        loop {
            buffer.clear();
            (&mut reader)
                .take(part_size as u64)
                .read_to_end(&mut buffer)?;
            if buffer.is_empty() && !paths.is_empty() {
                break;
            }
            let path = format!("{prefix}{:06}{suffix}", paths.len());
            self.append_bytes(&path, &buffer)?;
            paths.push(path);
            if buffer.len() < part_size {
                break;
            }
        }
        self.buffer = buffer;
        Ok(paths)
    }

    /// Writes the manifest (with every entry so far) and, with a signing key, its
    /// signature as the last entries, and ends the stream.
    pub fn finish(mut self, manifest: &mut Manifest) -> io::Result<(W, Written)> {
        manifest.entries = self.entries.clone();
        let json = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
        self.append_trailer(MANIFEST_PATH, &json)?;
        if let Some(signer) = self.signer.take() {
            let signature = signer.sign(&json, &manifest.name).map_err(|e| {
                io::Error::other(format!(
                    "sign the manifest with {}: {e}",
                    signer.path.display()
                ))
            })?;
            self.append_trailer(SIGNATURE_PATH, signature.as_bytes())?;
        }
        let encoder = self.tar.into_inner()?;
        let hashing = encoder.finish()?.finish()?.finish()?;
        let (mut out, sha256, size) = hashing.finish();
        out.flush()?;
        Ok((out, Written { sha256, size }))
    }
}

impl<W: Write + Send + 'static> BundleWriter<W> {
    /// An entry after the listed ones: the manifest, and its signature.
    fn append_trailer(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        self.tar.get_mut().expect_compressible(true)?;
        self.tar.append_data(&mut header, path, bytes)
    }
}

/// Yields exactly `remaining` bytes of `inner`, or fails if it ends early.
struct Exact<'a, R> {
    inner: R,
    remaining: u64,
    path: &'a str,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended {} bytes early (did it change while being read?)",
                    self.path, self.remaining
                ),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The SHA-256 an in-memory entry will get, for tests.
pub fn entry_sha(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_that_shrink_are_compressed() {
        let mut writer = BundleWriter::new(Vec::new(), Utc::now(), Compression::default()).unwrap();
        let noise = crate::bundle::noise(20_000);
        assert!(!writer.compresses(&noise));
        assert!(writer.compresses(&b"CREATE TABLE t (id int);\n".repeat(800)));
        // Too small to judge: compressed like everything else.
        assert!(writer.compresses(&noise[..500]));
    }
}
