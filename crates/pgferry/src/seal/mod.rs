//! Signed and encrypted bundles (guarantee 13), in standard formats an operator can check
//! by hand: a minisign signature of the manifest ([`signature`]) and age encryption of the
//! whole compressed stream ([`encryption`]). The sender seals with a [`Seal`]; a receiver
//! checks and opens with [`OpenKeys`]. Without `[bundle]` keys both are empty and bundles
//! are written and read as before.

pub mod encryption;
pub mod key_file;
pub mod probe;
pub mod refusal;
pub mod signature;

use std::sync::Arc;

pub use encryption::{Encrypting, Identities, Recipients};
pub use key_file::{KeyFileError, KeyRole};
pub use refusal::Refusal;
pub use signature::{KeyId, Signer, TrustedKeys, SIGNATURE_PATH};

use crate::settings::bundle_keys::{OpenSettings, SealSettings};

/// What the sender signs and encrypts bundles with.
#[derive(Clone, Default)]
pub struct Seal {
    pub signer: Option<Arc<Signer>>,
    pub recipients: Recipients,
}

impl Seal {
    /// Loads the signing key. A key other users can read still signs (the bundles must not
    /// stop), but is logged here and fails `sender check`.
    pub fn load(settings: &SealSettings) -> Result<Seal, KeyFileError> {
        let signer = match &settings.sign_key {
            Some(path) => {
                if let Err(err) = key_file::check_private(KeyRole::SignKey, path) {
                    tracing::warn!("{err}");
                }
                Some(Arc::new(Signer::load(path)?))
            }
            None => None,
        };
        Ok(Seal {
            signer,
            recipients: Recipients::new(&settings.encrypt_to),
        })
    }
}

/// What a receiver checks signatures against and opens encrypted bundles with.
#[derive(Clone, Default)]
pub struct OpenKeys {
    pub trusted: TrustedKeys,
    pub identities: Identities,
}

impl OpenKeys {
    /// Loads the keys; an identity file other users can read is logged here and fails
    /// `receiver check`.
    pub fn load(settings: &OpenSettings) -> Result<OpenKeys, KeyFileError> {
        for path in &settings.identities {
            if let Err(err) = key_file::check_private(KeyRole::Identity, path) {
                tracing::warn!("{err}");
            }
        }
        Ok(OpenKeys {
            trusted: TrustedKeys::load(&settings.trusted_keys)?,
            identities: Identities::load(&settings.identities)?,
        })
    }
}
