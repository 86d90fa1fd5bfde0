//! age encryption of a bundle: the whole compressed stream, so nothing of it (names of
//! tables and files included) can be read without an identity. Both directions stream:
//! age works in chunks of 64 KiB, each authenticated, so memory stays flat and a changed
//! or truncated bundle fails to decrypt.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use super::key_file::{self, KeyFileError, KeyProblem, KeyRole};
use super::refusal::Refusal;
use crate::settings::bundle_keys::AgeRecipient;

/// The recipients a sender encrypts to; empty: bundles are not encrypted.
#[derive(Clone, Default)]
pub struct Recipients(Vec<age::x25519::Recipient>);

impl Recipients {
    pub fn new(recipients: &[AgeRecipient]) -> Recipients {
        Recipients(recipients.iter().map(|r| r.0.clone()).collect())
    }

    pub fn from_keys(keys: Vec<age::x25519::Recipient>) -> Recipients {
        Recipients(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn encryptor(&self) -> io::Result<age::Encryptor> {
        age::Encryptor::with_recipients(self.0.iter().map(|r| r as &dyn age::Recipient))
            .map_err(io::Error::other)
    }
}

/// The output of a bundle, encrypted when there are recipients.
pub enum Encrypting<W: Write> {
    Plain(W),
    Age(age::stream::StreamWriter<W>),
}

impl<W: Write> Encrypting<W> {
    pub fn new(out: W, recipients: &Recipients) -> io::Result<Encrypting<W>> {
        if recipients.is_empty() {
            return Ok(Encrypting::Plain(out));
        }
        Ok(Encrypting::Age(recipients.encryptor()?.wrap_output(out)?))
    }

    /// Writes the last chunk and hands back the output.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encrypting::Plain(out) => Ok(out),
            Encrypting::Age(age) => age.finish(),
        }
    }
}

impl<W: Write> Write for Encrypting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encrypting::Plain(out) => out.write(buf),
            Encrypting::Age(age) => age.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encrypting::Plain(out) => out.flush(),
            Encrypting::Age(age) => age.flush(),
        }
    }
}

type Identity = Box<dyn age::Identity + Send + Sync>;

/// The identities a receiver opens bundles with. Several at once, so the sender can move
/// to a new recipient without a window of bundles nobody opens.
#[derive(Clone, Default)]
pub struct Identities {
    files: Arc<Vec<IdentityFile>>,
}

/// One identity file's keys, and the X25519 recipients they answer to (for `check`).
struct IdentityFile {
    identities: Vec<Identity>,
    recipients: Vec<age::x25519::Recipient>,
}

impl Identities {
    pub fn load(paths: &[PathBuf]) -> Result<Identities, KeyFileError> {
        let role = KeyRole::Identity;
        let mut files = Vec::new();
        for path in paths {
            // Read here, not by age, so an unreadable file is named like every key file.
            let text = key_file::read(role, path)?;
            let not_identity =
                |e: String| KeyFileError::new(role, path, KeyProblem::NotIdentity(e));
            let identities = age::IdentityFile::from_buffer(text.as_bytes())
                .map_err(|e| not_identity(e.to_string()))?
                .into_identities()
                .map_err(|e| not_identity(e.to_string()))?;
            if identities.is_empty() {
                return Err(not_identity("the file holds no key".into()));
            }
            let recipients = text
                .lines()
                .map(str::trim)
                .filter(|line| line.starts_with("AGE-SECRET-KEY-"))
                .filter_map(|line| line.parse::<age::x25519::Identity>().ok())
                .map(|identity| identity.to_public())
                .collect();
            files.push(IdentityFile {
                identities,
                recipients,
            });
        }
        Ok(Identities {
            files: Arc::new(files),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The X25519 recipients of the identities, as `age-keygen -y` prints them.
    pub fn recipients(&self) -> Vec<age::x25519::Recipient> {
        self.files
            .iter()
            .flat_map(|file| file.recipients.iter().cloned())
            .collect()
    }

    /// Opens an encrypted stream: the reader yields the plaintext, and fails on any chunk
    /// that was changed, and on a stream cut short.
    pub fn open<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>, Refusal> {
        let decryptor =
            age::Decryptor::new(input).map_err(|e| Refusal::BadEncryption(e.to_string()))?;
        if self.is_empty() {
            return Err(Refusal::NoIdentities);
        }
        let identities = self
            .files
            .iter()
            .flat_map(|file| file.identities.iter())
            .map(|id| id.as_ref() as &dyn age::Identity);
        decryptor.decrypt(identities).map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => Refusal::NoMatchingIdentity,
            other => Refusal::BadEncryption(other.to_string()),
        })
    }
}
