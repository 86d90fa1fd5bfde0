//! The `[bundle]` items of `sender check` and `receiver check`: each key loads, is kept
//! private, and does its job on a probe (sign and verify, encrypt and decrypt).

use std::io::{Read, Write};
use std::path::Path;

use super::encryption::{Encrypting, Identities, Recipients};
use super::key_file::{self, KeyRole};
use super::signature::{Signer, TrustedKeys};
use crate::report::Report;
use crate::settings::bundle_keys::{OpenSettings, SealSettings};

const PROBE: &[u8] = b"pgferry check probe";
const PROBE_NAME: &str = "pgferry-check-probe";

/// The sender's items: the signing key, and the recipients.
pub fn sender(report: &mut Report, settings: &SealSettings) {
    if let Some(path) = &settings.sign_key {
        sign_key(report, path);
    }
    if settings.encrypts() {
        let recipients = Recipients::new(&settings.encrypt_to);
        match encrypt(&recipients) {
            Ok(bytes) => report.ok(
                "encrypt to",
                format!(
                    "a probe encrypts to {} ({} bytes of age)",
                    settings
                        .encrypt_to
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    bytes.len()
                ),
            ),
            Err(err) => report.fail("encrypt to", format!("a probe does not encrypt: {err}")),
        }
    }
}

fn sign_key(report: &mut Report, path: &Path) {
    if let Err(err) = key_file::check_private(KeyRole::SignKey, path) {
        return report.fail("sign key", err.to_string());
    }
    let signer = match Signer::load(path) {
        Ok(signer) => signer,
        Err(err) => return report.fail("sign key", err.to_string()),
    };
    let checked = signer
        .sign(PROBE, PROBE_NAME)
        .map_err(|e| e.to_string())
        .and_then(|signature| {
            signer
                .as_trusted()
                .check(PROBE, Some(signature.as_bytes()), PROBE_NAME)
                .map_err(|e| e.to_string())
        });
    match checked {
        Ok(id) => report.ok(
            "sign key",
            format!(
                "{}: key ID {id} signs a probe and its public key verifies it; receivers trust it with a .pub file holding {}",
                path.display(),
                signer.public_key_text()
            ),
        ),
        Err(err) => report.fail("sign key", format!("{}: a probe failed: {err}", path.display())),
    }
}

/// A receiver's items: the trusted keys, and the identities.
pub fn receiver(report: &mut Report, settings: &OpenSettings) {
    for path in &settings.trusted_keys {
        trusted_key(report, path);
    }
    for path in &settings.identities {
        identity(report, path);
    }
}

fn trusted_key(report: &mut Report, path: &Path) {
    if let Err(err) = key_file::check_private(KeyRole::TrustedKey, path) {
        return report.fail("trusted key", err.to_string());
    }
    match TrustedKeys::load(&[path.to_path_buf()]) {
        Ok(keys) => {
            for (path, id) in keys.ids() {
                report.ok(
                    "trusted key",
                    format!("{}: key ID {id} loads", path.display()),
                );
            }
        }
        Err(err) => report.fail("trusted key", err.to_string()),
    }
}

fn identity(report: &mut Report, path: &Path) {
    if let Err(err) = key_file::check_private(KeyRole::Identity, path) {
        return report.fail("identity", err.to_string());
    }
    let paths = [path.to_path_buf()];
    let identities = match Identities::load(&paths) {
        Ok(identities) => identities,
        Err(err) => return report.fail("identity", err.to_string()),
    };
    match round_trip(&identities) {
        Ok(recipients) => report.ok(
            "identity",
            format!(
                "{}: a probe encrypted to its recipient {} decrypts",
                path.display(),
                recipients.join(", ")
            ),
        ),
        Err(err) => report.fail("identity", format!("{}: {err}", path.display())),
    }
}

/// Encrypts a probe to the identities' own recipients and opens it with the identities.
fn round_trip(identities: &Identities) -> Result<Vec<String>, String> {
    let recipients = identities.recipients();
    if recipients.is_empty() {
        return Err("it holds no X25519 identity (AGE-SECRET-KEY-1...) to probe".into());
    }
    let shown = recipients.iter().map(ToString::to_string).collect();
    let recipients = Recipients::from_keys(recipients);
    let sealed = encrypt(&recipients).map_err(|e| e.to_string())?;
    let mut opened = Vec::new();
    identities
        .open(sealed.as_slice())
        .map_err(|e| e.to_string())?
        .read_to_end(&mut opened)
        .map_err(|e| e.to_string())?;
    if opened != PROBE {
        return Err("the probe came back changed".into());
    }
    Ok(shown)
}

fn encrypt(recipients: &Recipients) -> std::io::Result<Vec<u8>> {
    let mut out = Encrypting::new(Vec::new(), recipients)?;
    out.write_all(PROBE)?;
    out.finish()
}
