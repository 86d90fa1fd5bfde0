//! Reading the key files of `[bundle]`, with errors that name the key and the file.

use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Which `[bundle]` key a file was named by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    SignKey,
    TrustedKey,
    Identity,
}

impl KeyRole {
    /// Secret keys must stay private; a public key need only stay unchanged.
    pub fn is_secret(self) -> bool {
        matches!(self, KeyRole::SignKey | KeyRole::Identity)
    }
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyRole::SignKey => "[bundle] sign_key",
            KeyRole::TrustedKey => "[bundle] trusted_keys",
            KeyRole::Identity => "[bundle] identities",
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{role} {}: {problem}", path.display())]
pub struct KeyFileError {
    pub role: KeyRole,
    pub path: PathBuf,
    pub problem: KeyProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyProblem {
    #[error("cannot read it: {0}")]
    Unreadable(io::Error),
    #[error("it is not a minisign secret key ({0}); hint: make one with `minisign -G -W -p bundle.pub -s bundle.key`")]
    NotSecretKey(String),
    #[error("it is protected by a password, and jobs run unattended; hint: make a key without one with `minisign -G -W`")]
    PasswordProtected,
    #[error("it is not a minisign public key ({0}); hint: use the .pub file `minisign -G` wrote beside the sender's key")]
    NotPublicKey(String),
    #[error("it holds no usable age identity ({0}); hint: make one with `age-keygen -o age.key`")]
    NotIdentity(String),
    #[error("it is {access} by other users (mode {mode:o}); hint: chmod o-rwx {path}")]
    OpenToOthers {
        access: &'static str,
        mode: u32,
        path: String,
    },
}

impl KeyFileError {
    pub fn new(role: KeyRole, path: &Path, problem: KeyProblem) -> KeyFileError {
        KeyFileError {
            role,
            path: path.to_path_buf(),
            problem,
        }
    }
}

/// Reads a key file as text.
pub fn read(role: KeyRole, path: &Path) -> Result<String, KeyFileError> {
    std::fs::read_to_string(path)
        .map_err(|err| KeyFileError::new(role, path, KeyProblem::Unreadable(err)))
}

/// Refuses a secret key other users may read, and any key other users may change (a
/// trusted key replaced is a forger trusted).
pub fn check_private(role: KeyRole, path: &Path) -> Result<(), KeyFileError> {
    let meta = std::fs::metadata(path)
        .map_err(|err| KeyFileError::new(role, path, KeyProblem::Unreadable(err)))?;
    let mode = meta.permissions().mode() & 0o7777;
    let access = if role.is_secret() && mode & 0o004 != 0 {
        Some("readable")
    } else if mode & 0o002 != 0 {
        Some("writable")
    } else {
        None
    };
    match access {
        Some(access) => Err(KeyFileError::new(
            role,
            path,
            KeyProblem::OpenToOthers {
                access,
                mode: mode & 0o777,
                path: path.display().to_string(),
            },
        )),
        None => Ok(()),
    }
}
