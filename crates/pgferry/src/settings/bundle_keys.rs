//! `[bundle]`: the keys that sign and encrypt bundles on the sender, and that check and
//! open them on a receiver (guarantee 13). Left out, bundles are neither signed nor
//! encrypted, as before.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

/// The sender's `[bundle]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealSettings {
    /// A minisign secret key without a password (`minisign -G -W`): jobs run unattended.
    #[serde(default)]
    pub sign_key: Option<PathBuf>,
    /// age recipients (`age1...`, as `age-keygen` prints them). More than one during a
    /// key rotation: any of their identities opens the bundle.
    #[serde(default)]
    pub encrypt_to: Vec<AgeRecipient>,
}

impl SealSettings {
    pub fn encrypts(&self) -> bool {
        !self.encrypt_to.is_empty()
    }
}

/// A receiver's `[bundle]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSettings {
    /// minisign public keys. When set, only bundles signed by one of them are loaded.
    #[serde(default)]
    pub trusted_keys: Vec<PathBuf>,
    /// age identity files (`age-keygen -o`), which open encrypted bundles.
    #[serde(default)]
    pub identities: Vec<PathBuf>,
}

/// An age X25519 recipient, checked when the config is read.
#[derive(Clone, PartialEq, Eq)]
pub struct AgeRecipient(pub age::x25519::Recipient);

impl FromStr for AgeRecipient {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim().parse().map(AgeRecipient).map_err(|_| {
            format!(
                "{text:?} is not an age recipient: expected the public key `age-keygen` prints, like \"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\""
            )
        })
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({self})")
    }
}

deserialize_from_str!(AgeRecipient);
