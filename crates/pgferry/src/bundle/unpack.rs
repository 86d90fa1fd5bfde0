//! Opens a bundle file as a tar stream, in three threads: one reads the file and hashes it
//! (and decrypts it, when its name ends in `.age`), one decompresses, and the caller's
//! parses the tar stream and hashes the entries.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::codec::{Codec, Decoder};
use super::hashing::HashingReader;
use super::naming::BundleName;
use crate::pipe::ReadAhead;
use crate::seal::{Identities, Refusal};

pub type Archive = tar::Archive<ReadAhead<Decompressed>>;

/// Why a bundle could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// It is encrypted, and the receiver cannot open it.
    Refused(Refusal),
    Io(io::Error),
}

impl From<io::Error> for OpenError {
    fn from(err: io::Error) -> Self {
        OpenError::Io(err)
    }
}

/// Opens the bundle at `path`. Its name says how it is compressed and whether it is
/// encrypted; a name that is not a bundle's is read as plain gzip, and the manifest check
/// refuses it later.
pub fn open(path: &Path, identities: &Identities) -> Result<Archive, OpenError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(BundleName::parse);
    let codec = name.as_ref().map_or(Codec::Gzip, |name| name.codec);
    let encrypted = name.as_ref().is_some_and(|name| name.encrypted);
    let digest = FileDigest::default();
    let file = Tallied {
        hashing: Some(HashingReader::new(File::open(path)?)),
        digest: digest.clone(),
    };
    let plaintext = if encrypted {
        Plaintext::Age(Box::new(identities.open(file).map_err(OpenError::Refused)?))
    } else {
        Plaintext::Plain(file)
    };
    let decompressed = Decompressed {
        decoder: Some(Decoder::new(ReadAhead::new(plaintext), codec)?),
        digest,
        file: None,
    };
    Ok(tar::Archive::new(ReadAhead::new(decompressed)))
}

/// Drains the rest of the compressed stream (so its checksum is checked), refuses trailing
/// bytes, and returns the SHA-256 and size of the file itself.
pub fn finish(archive: Archive) -> io::Result<(String, u64)> {
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

/// The file's SHA-256 and size, handed over by the thread that reads the file once it has
/// read it to its end: beneath the decryption, nothing else can reach it.
#[derive(Clone, Default)]
struct FileDigest(Arc<Mutex<Option<(String, u64)>>>);

impl FileDigest {
    fn set(&self, digest: (String, u64)) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(digest);
        }
    }

    fn take(&self) -> Option<(String, u64)> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// The file, hashed as it is read.
struct Tallied {
    hashing: Option<HashingReader<File>>,
    digest: FileDigest,
}

impl Read for Tallied {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(hashing) = self.hashing.as_mut() else {
            return Ok(0);
        };
        let n = hashing.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(hashing) = self.hashing.take() {
                self.digest.set(hashing.finish());
            }
        }
        Ok(n)
    }
}

/// The compressed stream: the file itself, or what age decrypts of it.
enum Plaintext {
    Plain(Tallied),
    Age(Box<age::stream::StreamReader<Tallied>>),
}

impl Read for Plaintext {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Plaintext::Plain(file) => file.read(buf),
            Plaintext::Age(age) => age.read(buf),
        }
    }
}

/// The decompressed stream. At its end it checks that nothing follows the compressed
/// stream, and keeps the file's SHA-256 and size.
pub struct Decompressed {
    decoder: Option<Decoder<ReadAhead<Plaintext>>>,
    digest: FileDigest,
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
        // The reading thread has ended: the file was read to its end (age's stream, too,
        // ends only at the file's end, after its last chunk was authenticated).
        input.finish()?;
        self.file = Some(
            self.digest
                .take()
                .ok_or_else(|| io::Error::other("the file was not read to its end"))?,
        );
        Ok(0)
    }
}
