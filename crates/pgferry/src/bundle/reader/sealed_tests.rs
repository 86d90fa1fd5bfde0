//! Signed and encrypted bundles: round trips, and each way one is refused.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::secrecy::ExposeSecret;
use chrono::Utc;

use super::*;
use crate::bundle::manifest::Kind;
use crate::bundle::writer::BundleWriter;
use crate::seal::{Identities, Recipients, Seal, Signer, TrustedKeys};

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A minisign key pair: the secret key's file, and the public key's.
    fn minisign(&self, name: &str) -> (PathBuf, PathBuf) {
        let pair = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let secret = self.dir.path().join(format!("{name}.key"));
        let public = self.dir.path().join(format!("{name}.pub"));
        std::fs::write(&secret, pair.sk.to_box(None).unwrap().into_string()).unwrap();
        std::fs::write(&public, pair.pk.to_box().unwrap().into_string()).unwrap();
        (secret, public)
    }

    /// An age identity's file, and its recipient.
    fn age(&self, name: &str) -> (PathBuf, age::x25519::Recipient) {
        let identity = age::x25519::Identity::generate();
        let path = self.dir.path().join(format!("{name}.age"));
        std::fs::write(&path, identity.to_string().expose_secret()).unwrap();
        (path, identity.to_public())
    }
}

fn seal(sign_key: Option<&Path>, recipients: Vec<age::x25519::Recipient>) -> Seal {
    Seal {
        signer: sign_key.map(|path| Arc::new(Signer::load(path).unwrap())),
        recipients: Recipients::from_keys(recipients),
    }
}

fn open_keys(trusted: &[PathBuf], identities: &[PathBuf]) -> OpenKeys {
    OpenKeys {
        trusted: TrustedKeys::load(trusted).unwrap(),
        identities: Identities::load(identities).unwrap(),
    }
}

/// A bundle with a data entry and a file, sealed as `seal` says, in `dir`.
fn write(dir: &Path, seal: &Seal, data: &[u8]) -> PathBuf {
    let name = BundleName::new(Utc::now(), Kind::Partial).encrypted(!seal.recipients.is_empty());
    let path = dir.join(name.file_name());
    let file = File::create(&path).unwrap();
    let mut writer = BundleWriter::sealed(file, name.created, Default::default(), seal).unwrap();
    writer.append_bytes("rows/000000.csv", data).unwrap();
    writer
        .append_bytes("files/images/a.jpeg", &crate::bundle::noise(200_000))
        .unwrap();
    let mut manifest = super::tests::manifest(&name);
    writer.finish(&mut manifest).unwrap();
    path
}

fn rows(path: &Path, verified: &Verified) -> Vec<u8> {
    let mut rows = Vec::new();
    read_entries(path, verified, |kind, _, reader| {
        if *kind == EntryKind::Rows {
            reader.read_to_end(&mut rows)?;
        } else {
            std::io::copy(reader, &mut std::io::sink())?;
        }
        Ok(())
    })
    .unwrap();
    rows
}

fn refusal(path: &Path, keys: &OpenKeys) -> Refusal {
    match verify(path, keys).unwrap_err().problem {
        Problem::Untrusted(refusal) => refusal,
        other => panic!("refused as damaged, not untrusted: {other}"),
    }
}

#[test]
fn signed_encrypted_and_both_round_trip() {
    let keys = Keys::new();
    let (secret, public) = keys.minisign("sender");
    let (identity, recipient) = keys.age("receiver");
    let opener = open_keys(
        std::slice::from_ref(&public),
        std::slice::from_ref(&identity),
    );
    let key_id = Signer::load(&secret).unwrap().key_id();
    let dir = tempfile::tempdir().unwrap();
    for (signed, encrypted) in [(true, false), (false, true), (true, true)] {
        let sealed = seal(
            signed.then_some(secret.as_path()),
            if encrypted {
                vec![recipient.clone()]
            } else {
                vec![]
            },
        );
        let path = write(dir.path(), &sealed, b"1,one\n2,two\n");
        let keys = if signed {
            opener.clone()
        } else {
            OpenKeys {
                trusted: TrustedKeys::default(),
                ..opener.clone()
            }
        };
        let verified = verify(&path, &keys).unwrap();
        assert_eq!(verified.signed_by, signed.then_some(key_id));
        assert_eq!(verified.size, std::fs::metadata(&path).unwrap().len());
        assert_eq!(rows(&path, &verified), b"1,one\n2,two\n");
        let raw = std::fs::read(&path).unwrap();
        // Encrypted, nothing of the tar stream shows (gzip's magic is the first thing).
        assert_eq!(raw.starts_with(b"age-encryption.org/v1"), encrypted);
        assert_eq!(raw.starts_with(&[0x1f, 0x8b]), !encrypted);
    }
}

#[test]
fn a_receiver_with_trusted_keys_refuses_unsigned_and_foreign_bundles() {
    let keys = Keys::new();
    let (_, trusted) = keys.minisign("trusted");
    let (stranger, _) = keys.minisign("stranger");
    let opener = open_keys(&[trusted], &[]);
    let dir = tempfile::tempdir().unwrap();
    let unsigned = write(dir.path(), &Seal::default(), b"1\n");
    assert_eq!(refusal(&unsigned, &opener), Refusal::Unsigned);
    let foreign = write(dir.path(), &seal(Some(&stranger), vec![]), b"1\n");
    let stranger_id = Signer::load(&stranger).unwrap().key_id();
    assert!(matches!(
        refusal(&foreign, &opener),
        Refusal::UnknownKey { signed_by, .. } if signed_by == stranger_id
    ));
}

#[test]
fn a_signed_bundle_renamed_is_refused_for_its_signature() {
    let keys = Keys::new();
    let (secret, public) = keys.minisign("sender");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &seal(Some(&secret), vec![]), b"1\n");
    let later = BundleName::new(Utc::now() + chrono::Duration::hours(1), Kind::Partial);
    let renamed = dir.path().join(later.file_name());
    std::fs::rename(&path, &renamed).unwrap();
    assert!(matches!(
        refusal(&renamed, &open_keys(&[public], &[])),
        Refusal::WrongName { .. }
    ));
}

#[test]
fn both_keys_of_a_rotation_are_trusted_and_both_identities_open() {
    let keys = Keys::new();
    let (old_secret, old_public) = keys.minisign("old");
    let (new_secret, new_public) = keys.minisign("new");
    let (old_identity, old_recipient) = keys.age("old");
    let (new_identity, new_recipient) = keys.age("new");
    let dir = tempfile::tempdir().unwrap();
    let both_trusted = [old_public, new_public];
    for secret in [&old_secret, &new_secret] {
        let path = write(
            dir.path(),
            &seal(
                Some(secret),
                vec![old_recipient.clone(), new_recipient.clone()],
            ),
            b"1\n",
        );
        // A receiver that has either identity opens it.
        for identity in [&old_identity, &new_identity] {
            let verified = verify(
                &path,
                &open_keys(&both_trusted, std::slice::from_ref(identity)),
            )
            .unwrap();
            assert_eq!(rows(&path, &verified), b"1\n");
        }
    }
}

#[test]
fn an_encrypted_bundle_needs_one_of_its_identities() {
    let keys = Keys::new();
    let (_, recipient) = keys.age("receiver");
    let (other, _) = keys.age("other");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &seal(None, vec![recipient]), b"1\n");
    assert_eq!(refusal(&path, &OpenKeys::default()), Refusal::NoIdentities);
    assert_eq!(
        refusal(&path, &open_keys(&[], &[other])),
        Refusal::NoMatchingIdentity
    );
}

#[test]
fn a_changed_byte_of_an_encrypted_bundle_is_refused() {
    let keys = Keys::new();
    let (identity, recipient) = keys.age("receiver");
    let opener = open_keys(&[], &[identity]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &seal(None, vec![recipient]), b"1\n");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let err = verify(&path, &opener).unwrap_err();
    assert!(matches!(err.problem, Problem::Damaged(_)), "{err}");
    // Cut short after a whole chunk: age knows its last chunk, so this is refused too.
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    assert!(verify(&path, &opener).is_err());
}

#[test]
fn keys_turned_on_one_side_first_refuse_nothing() {
    // The order the README gives: a receiver with identities still reads plain bundles,
    // and one without trusted keys reads signed ones (checking nothing of the signature).
    let keys = Keys::new();
    let (secret, _) = keys.minisign("sender");
    let (identity, _) = keys.age("receiver");
    let dir = tempfile::tempdir().unwrap();
    let plain = write(dir.path(), &Seal::default(), b"1\n");
    let verified = verify(&plain, &open_keys(&[], &[identity])).unwrap();
    assert_eq!(rows(&plain, &verified), b"1\n");
    let signed = write(dir.path(), &seal(Some(&secret), vec![]), b"2\n");
    let verified = verify(&signed, &OpenKeys::default()).unwrap();
    assert_eq!(verified.signed_by, None);
    assert_eq!(rows(&signed, &verified), b"2\n");
}
