//! minisign signatures of a bundle's manifest. The manifest lists the size and SHA-256 of
//! every entry, and the bundle's name, kind and creation time, so signing its exact bytes
//! signs the whole bundle. The signature travels in the bundle as the entry after the
//! manifest, in minisign's own `.minisig` format, so the `minisign` program checks it too.
//! Its trusted comment names the bundle: a signature moved to another name fails.

use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::key_file::{self, KeyFileError, KeyProblem, KeyRole};
use super::refusal::Refusal;

/// The signature's entry path inside the archive, after the manifest.
pub const SIGNATURE_PATH: &str = "MANIFEST.json.minisig";

/// What the trusted comment of a bundle's signature says.
pub fn trusted_comment(bundle: &str) -> String {
    format!("pgferry bundle {bundle}")
}

/// A minisign key ID, printed as the `minisign` program prints it in a key file's comment:
/// hexadecimal without leading zeros, so an operator finds the same text in the `.pub`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyId(pub u64);

impl KeyId {
    fn of(keynum: &[u8]) -> KeyId {
        let mut bytes = [0u8; 8];
        let n = keynum.len().min(8);
        bytes[..n].copy_from_slice(&keynum[..n]);
        KeyId(u64::from_le_bytes(bytes))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}", self.0)
    }
}

/// The sender's secret key, with the public half it proves itself against.
pub struct Signer {
    secret: minisign::SecretKey,
    public: minisign::PublicKey,
    pub path: PathBuf,
}

impl Signer {
    pub fn load(path: &Path) -> Result<Signer, KeyFileError> {
        let role = KeyRole::SignKey;
        let text = key_file::read(role, path)?;
        let fail = |problem| KeyFileError::new(role, path, problem);
        let bytes = secret_key_bytes(&text).map_err(fail)?;
        // Read from its bytes rather than through `SecretKey::from_unencrypted_box`: that
        // demands a checksum which `minisign -G -W` (0.11, Debian's) leaves as zeros. The
        // probe signature below catches a damaged key instead.
        let secret = minisign::SecretKey::from_bytes(&bytes)
            .map_err(|e| fail(KeyProblem::NotSecretKey(e.to_string())))?;
        let public = minisign::PublicKey::from_secret_key(&secret)
            .map_err(|e| fail(KeyProblem::NotSecretKey(e.to_string())))?;
        let signer = Signer {
            secret,
            public,
            path: path.to_path_buf(),
        };
        signer.sign(b"probe", "probe").map_err(|_| {
            fail(KeyProblem::NotSecretKey(
                "its halves do not match: it is damaged".into(),
            ))
        })?;
        Ok(signer)
    }

    pub fn key_id(&self) -> KeyId {
        KeyId::of(self.public.keynum())
    }

    /// The public key, as the `.pub` file holds it.
    pub fn public_key_text(&self) -> String {
        self.public.to_base64()
    }

    /// The signature of `manifest` for `bundle`, as the text of a `.minisig` file.
    pub fn sign(&self, manifest: &[u8], bundle: &str) -> Result<String, minisign::PError> {
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            Cursor::new(manifest),
            Some(&trusted_comment(bundle)),
            Some(&format!(
                "signature from pgferry sender key {}",
                self.key_id()
            )),
        )?;
        Ok(signature.into_string())
    }

    /// The key as a receiver trusts it, for the sender's own probe.
    pub fn as_trusted(&self) -> TrustedKeys {
        TrustedKeys {
            keys: Arc::new(vec![(self.path.clone(), self.public.clone())]),
        }
    }
}

/// The bytes of a minisign secret key file (a comment line, then base64): the algorithm
/// `Ed`, the key derivation (none, or scrypt's `Sc` for a password), the checksum's, the
/// salt and limits, the key ID, the key, and its checksum: 158 bytes.
fn secret_key_bytes(text: &str) -> Result<Vec<u8>, KeyProblem> {
    use base64::Engine;
    let line = text
        .lines()
        .nth(1)
        .ok_or_else(|| KeyProblem::NotSecretKey("it has no key line".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .map_err(|e| KeyProblem::NotSecretKey(format!("the key line is not base64: {e}")))?;
    if bytes.len() != 158 || bytes.get(..2) != Some(b"Ed".as_slice()) {
        return Err(KeyProblem::NotSecretKey(
            "it does not hold an Ed25519 secret key".into(),
        ));
    }
    match bytes.get(2..4) {
        Some([0, 0]) => Ok(bytes),
        Some(b"Sc") => Err(KeyProblem::PasswordProtected),
        _ => Err(KeyProblem::NotSecretKey(
            "its key derivation is unknown".into(),
        )),
    }
}

/// The public keys a receiver accepts signatures from. Several at once, so a sender can
/// move to a new key without a window of refused bundles.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    keys: Arc<Vec<(PathBuf, minisign::PublicKey)>>,
}

impl TrustedKeys {
    pub fn load(paths: &[PathBuf]) -> Result<TrustedKeys, KeyFileError> {
        let role = KeyRole::TrustedKey;
        let mut keys = Vec::new();
        for path in paths {
            let text = key_file::read(role, path)?;
            let key = minisign::PublicKeyBox::from_string(&text)
                .and_then(|boxed| boxed.into_public_key())
                .or_else(|_| minisign::PublicKey::from_base64(text.trim()))
                .map_err(|e| {
                    KeyFileError::new(role, path, KeyProblem::NotPublicKey(e.to_string()))
                })?;
            keys.push((path.clone(), key));
        }
        Ok(TrustedKeys {
            keys: Arc::new(keys),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each key's file and ID, for `check` and the refusals.
    pub fn ids(&self) -> Vec<(PathBuf, KeyId)> {
        self.keys
            .iter()
            .map(|(path, key)| (path.clone(), KeyId::of(key.keynum())))
            .collect()
    }

    /// Checks that `signature` (the `.minisig` text, if the bundle has one) signs exactly
    /// `manifest` for the bundle named `bundle`, by one of these keys; returns the key.
    pub fn check(
        &self,
        manifest: &[u8],
        signature: Option<&[u8]>,
        bundle: &str,
    ) -> Result<KeyId, Refusal> {
        let text = signature.ok_or(Refusal::Unsigned)?;
        let text = std::str::from_utf8(text)
            .map_err(|_| Refusal::MalformedSignature("it is not text".into()))?;
        let signature = minisign::SignatureBox::from_string(text)
            .map_err(|e| Refusal::MalformedSignature(e.to_string()))?;
        let signed_by = KeyId::of(signature.keynum());
        let Some((_, key)) = self
            .keys
            .iter()
            .find(|(_, key)| key.keynum() == signature.keynum())
        else {
            return Err(Refusal::UnknownKey {
                signed_by,
                trusted: self
                    .ids()
                    .iter()
                    .map(|(path, id)| format!("{id} in {}", path.display()))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        // Legacy (not prehashed) signatures are refused: pgferry never makes them.
        minisign::verify(key, &signature, Cursor::new(manifest), true, false, false)
            .map_err(|_| Refusal::BadSignature(signed_by))?;
        let comment = signature
            .trusted_comment()
            .map_err(|e| Refusal::MalformedSignature(e.to_string()))?;
        if comment != trusted_comment(bundle) {
            return Err(Refusal::WrongName {
                signed_as: comment
                    .strip_prefix("pgferry bundle ")
                    .unwrap_or(&comment)
                    .to_string(),
                name: bundle.to_string(),
            });
        }
        Ok(signed_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(dir: &Path, name: &str) -> Signer {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let path = dir.join(name);
        std::fs::write(
            &path,
            pair.sk.to_box(None).unwrap().into_string().as_bytes(),
        )
        .unwrap();
        Signer::load(&path).unwrap()
    }

    #[test]
    fn a_signature_holds_only_for_its_manifest_its_name_and_a_trusted_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = signer(dir.path(), "old.key");
        let new = signer(dir.path(), "new.key");
        let manifest = br#"{"name":"b"}"#;
        let signed = old.sign(manifest, "b").unwrap();
        let trusted = old.as_trusted();
        assert_eq!(
            trusted.check(manifest, Some(signed.as_bytes()), "b"),
            Ok(old.key_id())
        );
        assert_eq!(
            trusted.check(br#"{"name":"c"}"#, Some(signed.as_bytes()), "b"),
            Err(Refusal::BadSignature(old.key_id()))
        );
        assert!(matches!(
            trusted.check(manifest, Some(signed.as_bytes()), "c"),
            Err(Refusal::WrongName { .. })
        ));
        assert_eq!(trusted.check(manifest, None, "b"), Err(Refusal::Unsigned));
        let by_new = new.sign(manifest, "b").unwrap();
        assert!(matches!(
            trusted.check(manifest, Some(by_new.as_bytes()), "b"),
            Err(Refusal::UnknownKey { signed_by, .. }) if signed_by == new.key_id()
        ));
        assert!(matches!(
            trusted.check(manifest, Some(b"not a signature"), "b"),
            Err(Refusal::MalformedSignature(_))
        ));
    }

    #[test]
    fn a_key_id_reads_as_in_minisigns_key_files() {
        // minisign writes `%" PRIX64`: no leading zeros.
        assert_eq!(KeyId(0x0C09_F146_8ED2_0FF1).to_string(), "C09F1468ED20FF1");
        assert_eq!(
            KeyId::of(&0xD5C1_7537_2C4B_7E77u64.to_le_bytes()).to_string(),
            "D5C175372C4B7E77"
        );
    }

    #[test]
    fn a_key_whose_checksum_minisign_left_as_zeros_loads() {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let dir = tempfile::tempdir().unwrap();
        let made = signer(dir.path(), "made.key");
        let text = std::fs::read_to_string(&made.path).unwrap();
        let mut bytes = engine.decode(text.lines().nth(1).unwrap()).unwrap();
        bytes[126..].fill(0);
        let zeroed = dir.path().join("zeroed.key");
        std::fs::write(
            &zeroed,
            format!("untrusted comment: x\n{}\n", engine.encode(&bytes)),
        )
        .unwrap();
        assert_eq!(Signer::load(&zeroed).unwrap().key_id(), made.key_id());
        // A damaged key is refused, not used to sign what nobody can verify.
        bytes[70] ^= 1;
        std::fs::write(
            &zeroed,
            format!("untrusted comment: x\n{}\n", engine.encode(&bytes)),
        )
        .unwrap();
        assert!(matches!(
            Signer::load(&zeroed).err().unwrap().problem,
            KeyProblem::NotSecretKey(_)
        ));
    }

    #[test]
    fn a_password_protected_key_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let pair = minisign::KeyPair::generate_encrypted_keypair(Some("pw".into())).unwrap();
        let path = dir.path().join("locked.key");
        std::fs::write(&path, pair.sk.to_box(None).unwrap().into_string()).unwrap();
        let err = Signer::load(&path).err().unwrap();
        assert!(
            matches!(err.problem, KeyProblem::PasswordProtected),
            "{err}"
        );
        std::fs::write(&path, "untrusted comment: x\nnot base64\n").unwrap();
        let err = Signer::load(&path).err().unwrap();
        assert!(matches!(err.problem, KeyProblem::NotSecretKey(_)), "{err}");
    }
}
