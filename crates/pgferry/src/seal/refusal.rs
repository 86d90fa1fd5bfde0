//! Why a receiver refuses a bundle it cannot trust or open. A refused bundle changes
//! nothing and is recorded like a damaged one.

use super::signature::KeyId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is not signed, and this receiver loads only bundles signed by one of its [bundle] trusted_keys")]
    Unsigned,
    #[error("it is signed by key {signed_by}, which is not one of the [bundle] trusted_keys ({trusted})")]
    UnknownKey { signed_by: KeyId, trusted: String },
    #[error(
        "its signature by key {0} does not match its manifest: it was changed after it was signed"
    )]
    BadSignature(KeyId),
    #[error("it was signed as {signed_as:?}, not as {name:?}: a renamed or replayed bundle")]
    WrongName { signed_as: String, name: String },
    #[error("its signature cannot be read: {0}")]
    MalformedSignature(String),
    #[error("it is encrypted (age), and this receiver has no [bundle] identities to open it")]
    NoIdentities,
    #[error("none of the [bundle] identities opens it: it was encrypted to other recipients")]
    NoMatchingIdentity,
    #[error("it was applied before, and {newer} since: an old bundle put back in the inbox or store (replayed); it is not applied again")]
    Replayed { newer: String },
    #[error("its age encryption cannot be opened (changed, or not an age file): {0}")]
    BadEncryption(String),
}
