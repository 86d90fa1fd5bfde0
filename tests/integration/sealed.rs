//! Issue 17: signed and encrypted bundles (guarantee 13). The keys are made by the real
//! `minisign` and `age-keygen`, and the bundles are checked and opened by the real
//! `minisign` and `age` programs too, as an operator would by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ferry::*;
use crate::operations::{mails_to, own_mailbox};
use crate::s3::replace_table;
use crate::util::*;

const CHANGE: &str = "INSERT INTO \"AndroidRequests_report\" (message) SELECT 'later ' || g FROM generate_series(1, 5) g;";
const TABLE: &str = "\"AndroidRequests_report\"";

/// Runs a program; its exit code and both streams.
fn program(name: &str, args: &[&str]) -> Run {
    Run::from(
        Command::new(name).args(args).output().unwrap_or_else(|e| {
            panic!("{name} does not run (scripts/testenv.sh installs it): {e}")
        }),
    )
}

/// `age -d`: opens `bundle` with `identity` into `out`.
fn age_decrypt(identity: &Path, bundle: &Path, out: &Path) -> Run {
    let arg = |p: &Path| p.to_str().unwrap().to_string();
    program(
        "age",
        &["-d", "-i", &arg(identity), "-o", &arg(out), &arg(bundle)],
    )
}

/// `minisign -V`: checks the manifest of an unpacked bundle against `public`.
fn minisign_verify(public: &Path, unpacked: &Path) -> Run {
    let arg = |p: PathBuf| p.to_str().unwrap().to_string();
    program(
        "minisign",
        &[
            "-V",
            "-p",
            &arg(public.to_path_buf()),
            "-m",
            &arg(unpacked.join("MANIFEST.json")),
            "-x",
            &arg(unpacked.join("MANIFEST.json.minisig")),
        ],
    )
}

/// A minisign key pair made by `minisign -G -W`, and its key ID as minisign prints it.
struct SignKey {
    secret: PathBuf,
    public: PathBuf,
    id: String,
}

/// An age identity made by `age-keygen`, and its recipient.
struct AgeKey {
    identity: PathBuf,
    recipient: String,
}

/// A directory of keys, removed with it.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        Keys {
            dir: tempfile::Builder::new()
                .prefix("pgferry-keys-")
                .tempdir()
                .unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn minisign(&self, name: &str) -> SignKey {
        let secret = self.path(&format!("{name}.key"));
        let public = self.path(&format!("{name}.pub"));
        program(
            "minisign",
            &[
                "-G",
                "-W",
                "-p",
                public.to_str().unwrap(),
                "-s",
                secret.to_str().unwrap(),
            ],
        )
        .expect_code(0);
        let text = std::fs::read_to_string(&public).unwrap();
        let id = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("untrusted comment: minisign public key "))
            .unwrap()
            .to_string();
        SignKey { secret, public, id }
    }

    fn age(&self, name: &str) -> AgeKey {
        let identity = self.path(&format!("{name}.age"));
        program("age-keygen", &["-o", identity.to_str().unwrap()]).expect_code(0);
        let recipient = program("age-keygen", &["-y", identity.to_str().unwrap()])
            .expect_code(0)
            .stdout
            .trim()
            .to_string();
        AgeKey {
            identity,
            recipient,
        }
    }
}

/// A sender's `[bundle]`.
fn seal_toml(sign: Option<&SignKey>, to: &[&AgeKey]) -> String {
    let mut text = "[bundle]\n".to_string();
    if let Some(key) = sign {
        text += &format!("sign_key = \"{}\"\n", key.secret.display());
    }
    let to: Vec<String> = to.iter().map(|k| format!("\"{}\"", k.recipient)).collect();
    text += &format!("encrypt_to = [{}]\n", to.join(", "));
    text
}

/// A receiver's `[bundle]`.
fn open_toml(trusted: &[&SignKey], identities: &[&AgeKey]) -> String {
    let list = |paths: Vec<&PathBuf>| {
        paths
            .iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[bundle]\ntrusted_keys = [{}]\nidentities = [{}]\n",
        list(trusted.iter().map(|k| &k.public).collect()),
        list(identities.iter().map(|k| &k.identity).collect())
    )
}

/// Replaces a config's `[bundle]`.
fn set_bundle(config: &Path, bundle: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, replace_table(&text, "bundle", bundle)).unwrap();
}

/// A sender and receiver of the reports, sealed with these `[bundle]` tables.
fn sealed_ferry(seal: &str, open: &str) -> Ferry {
    Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        &format!("{REPORTS_PARTIAL}{seal}"),
        open,
    )
}

fn same(ferry: &Ferry) {
    ferry.assert_same(TABLE, "id");
}

#[test]
fn signed_and_encrypted_bundles_round_trip_and_the_standard_programs_check_and_open_them() {
    let keys = Keys::new();
    let sign = keys.minisign("bundle");
    let age = keys.age("receiver");
    let ferry = sealed_ferry(
        &seal_toml(Some(&sign), &[&age]),
        &open_toml(&[&sign], &[&age]),
    );

    // Both checks prove their keys: sign and verify, encrypt and decrypt a probe.
    // (The receiver's after the first upload, which makes the inbox.)
    for dir in ["sender-state", "receiver-state"] {
        std::fs::create_dir_all(ferry.scratch.path(dir)).unwrap();
    }
    let check = ferry.sender(&["check"]);
    check.expect_code(0);
    assert!(
        check.line("ok   sign key:").contains(&sign.id),
        "{}",
        check.stdout
    );
    assert!(check.line("ok   encrypt to:").contains(&age.recipient));
    ferry.sender(&["complete"]).expect_code(0);
    let check = ferry.receiver(&["check"]);
    check.expect_code(0);
    assert!(
        check.line("ok   trusted key:").contains(&sign.id),
        "{}",
        check.stdout
    );
    assert!(check.line("ok   identity:").contains(&age.recipient));

    let pending = ferry.pending();
    assert_eq!(pending.len(), 1);
    let name = &pending[0];
    assert!(name.ends_with(".tar.gz.age"), "{name}");
    let bundle = ferry.scratch.inbox.join(name);

    // Nothing of it reads without the identity: it is not even gzip.
    let listing = program("tar", &["-tzf", bundle.to_str().unwrap()]);
    assert_ne!(
        listing.code, 0,
        "tar read an encrypted bundle: {}",
        listing.stdout
    );
    let raw = std::fs::read(&bundle).unwrap();
    assert!(raw.starts_with(b"age-encryption.org/v1\n"));
    let stranger = keys.age("stranger");
    let opened = keys.path("opened.tar.gz");
    assert_ne!(age_decrypt(&stranger.identity, &bundle, &opened).code, 0);
    assert!(!opened.exists() || std::fs::metadata(&opened).unwrap().len() == 0);

    // By hand, with the standard programs: age opens it, minisign checks the manifest's
    // signature, and sha256sum checks every entry against the manifest.
    age_decrypt(&age.identity, &bundle, &opened).expect_code(0);
    let unpacked = keys.path("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    program(
        "tar",
        &[
            "-xzf",
            opened.to_str().unwrap(),
            "-C",
            unpacked.to_str().unwrap(),
        ],
    )
    .expect_code(0);
    let manifest = unpacked.join("MANIFEST.json");
    let checked = minisign_verify(&sign.public, &unpacked);
    checked.expect_code(0);
    assert!(
        checked
            .stdout
            .contains(&format!("Trusted comment: pgferry bundle {name}")),
        "{}",
        checked.stdout
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let sums: String = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}  {}\n",
                e["sha256"].as_str().unwrap(),
                e["path"].as_str().unwrap()
            )
        })
        .collect();
    std::fs::write(keys.path("SHA256SUMS"), sums).unwrap();
    let sums = Command::new("sha256sum")
        .args([
            "--check",
            "--strict",
            keys.path("SHA256SUMS").to_str().unwrap(),
        ])
        .current_dir(&unpacked)
        .output()
        .unwrap();
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    // A changed manifest no longer matches the signature, for minisign too.
    let text = std::fs::read_to_string(&manifest).unwrap();
    let changed = text.replace("\"rows\": 10", "\"rows\": 11");
    assert_ne!(changed, text);
    std::fs::write(&manifest, changed).unwrap();
    let forged = minisign_verify(&sign.public, &unpacked);
    assert_ne!(forged.code, 0, "minisign accepted a changed manifest");

    // The receiver checks and opens it, and loads it; then a partial the same way.
    let verified = ferry.receiver(&["verify", bundle.to_str().unwrap()]);
    verified.expect_code(0);
    assert!(
        verified
            .line("signature:")
            .contains(&format!("good, by trusted key {}", sign.id)),
        "{}",
        verified.stdout
    );
    assert_eq!(verified.line("encryption:"), "encryption:    age, opened");
    ferry.receiver(&["load"]).expect_code(0);
    same(&ferry);
    ferry.source.sql(CHANGE);
    ferry.ship_partial(&[]);
    same(&ferry);
    assert!(ferry
        .inbox_sub("applied")
        .iter()
        .all(|n| n.ends_with(".tar.gz.age")));
    assert_eq!(ferry.ledger().len(), 2);
}

#[test]
fn a_bundle_only_signed_or_only_encrypted_round_trips() {
    let keys = Keys::new();
    let sign = keys.minisign("bundle");
    let age = keys.age("receiver");
    for (seal, open, suffix) in [
        (
            seal_toml(Some(&sign), &[]),
            open_toml(&[&sign], &[]),
            ".tar.gz",
        ),
        (
            seal_toml(None, &[&age]),
            open_toml(&[], &[&age]),
            ".tar.gz.age",
        ),
    ] {
        let ferry = sealed_ferry(&seal, &open);
        ferry.ship();
        ferry.source.sql(CHANGE);
        ferry.ship_partial(&[]);
        same(&ferry);
        let applied = ferry.inbox_sub("applied");
        assert_eq!(applied.len(), 2);
        assert!(applied.iter().all(|n| n.ends_with(suffix)), "{applied:?}");
    }
}

/// A receiver with trusted keys that has loaded a complete and a partial, and the bytes of
/// both, for bundles made or changed by someone else.
struct Forgery {
    ferry: Ferry,
    keys: Keys,
    mailbox: String,
    complete: (String, Vec<u8>),
    partial: (String, Vec<u8>),
    target_rows: String,
    ledger: Vec<String>,
}

impl Forgery {
    fn new() -> Forgery {
        let keys = Keys::new();
        let sign = keys.minisign("bundle");
        let ferry = sealed_ferry(&seal_toml(Some(&sign), &[]), &open_toml(&[&sign], &[]));
        let mailbox = own_mailbox(&ferry);
        let bytes = |ferry: &Ferry| {
            let name = ferry.pending()[0].clone();
            let bytes = std::fs::read(ferry.scratch.inbox.join(&name)).unwrap();
            (name, bytes)
        };
        ferry.sender(&["complete"]).expect_code(0);
        let complete = bytes(&ferry);
        ferry.receiver(&["load"]).expect_code(0);
        ferry.source.sql(CHANGE);
        ferry.sender(&["partial"]).expect_code(0);
        let partial = bytes(&ferry);
        ferry.receiver(&["load"]).expect_code(0);
        same(&ferry);
        let target_rows = Ferry::rows(&ferry.target, TABLE, "id");
        let ledger = ferry.ledger();
        Forgery {
            ferry,
            keys,
            mailbox,
            complete,
            partial,
            target_rows,
            ledger,
        }
    }

    /// A bundle name `minutes` after the partial's, of `kind`.
    fn later_name(&self, minutes: i64, kind: &str) -> String {
        let name = pgferry::bundle::BundleName::parse(&self.partial.0).unwrap();
        let mut later = name.clone();
        later.created = name.created + chrono::Duration::minutes(minutes);
        later.kind = if kind == "complete" {
            pgferry::bundle::Kind::Complete
        } else {
            pgferry::bundle::Kind::Partial
        };
        later.file_name()
    }

    /// Puts `bytes` in the inbox as `name`; the load refuses it with `reason`, moves it to
    /// `failed/` and changes nothing on the target.
    fn refused(&self, name: &str, bytes: &[u8], reason: &str) {
        std::fs::write(self.ferry.scratch.inbox.join(name), bytes).unwrap();
        self.refused_pending(name, reason);
    }

    fn refused_pending(&self, name: &str, reason: &str) {
        let run = self.ferry.receiver(&["load"]);
        run.expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("bundle {name} failed verification: {reason}")),
            "expected the refusal of {name} for {reason:?} in\n{}",
            run.stderr
        );
        assert!(
            self.ferry.pending().is_empty(),
            "{:?}",
            self.ferry.pending()
        );
        assert!(
            self.ferry.inbox_sub("failed").contains(&name.to_string()),
            "{:?}",
            self.ferry.inbox_sub("failed")
        );
        assert_eq!(
            Ferry::rows(&self.ferry.target, TABLE, "id"),
            self.target_rows
        );
        assert_eq!(self.ferry.ledger(), self.ledger);
    }

    /// A sender config like the ferry's, with another `[bundle]`.
    fn other_sender(&self, tag: &str, bundle: &str) -> PathBuf {
        let text = std::fs::read_to_string(&self.ferry.sender_config).unwrap();
        let text = replace_table(&text, "bundle", bundle);
        // Its own state: it must not move the real sender's high-water mark.
        let state = self
            .ferry
            .scratch
            .path("sender-state")
            .display()
            .to_string();
        let text = text.replace(&state, &format!("{state}-{tag}"));
        self.ferry
            .scratch
            .write(&format!("sender-{tag}.toml"), &text)
    }
}

/// The entries of a bundle's tar stream, in order.
fn untar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_str().unwrap().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn retar(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn forged_unsigned_foreign_changed_replayed_and_renamed_bundles_are_refused_and_change_nothing() {
    use sha2::Digest;
    let forgery = Forgery::new();
    let ferry = &forgery.ferry;

    // Forged: the partial's rows changed, the manifest rewritten to match them under a new
    // name, and the old signature kept. Checksums match; the signature does not.
    let forged_name = forgery.later_name(1, "partial");
    let mut entries = untar(&forgery.partial.1);
    let rows = entries
        .iter_mut()
        .find(|(n, _)| n.starts_with("rows/"))
        .unwrap();
    rows.1 = String::from_utf8(rows.1.clone())
        .unwrap()
        .replace("later 1", "forged!!")
        .into_bytes();
    assert_ne!(
        rows.1,
        untar(&forgery.partial.1)
            .iter()
            .find(|(n, _)| n == &rows.0)
            .unwrap()
            .1
    );
    let (rows_path, rows_bytes) = rows.clone();
    let manifest = entries
        .iter_mut()
        .find(|(n, _)| n == "MANIFEST.json")
        .unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&manifest.1).unwrap();
    json["name"] = forged_name.clone().into();
    for entry in json["entries"].as_array_mut().unwrap() {
        if entry["path"] == rows_path.as_str() {
            entry["sha256"] = hex::encode(sha2::Sha256::digest(&rows_bytes)).into();
        }
    }
    manifest.1 = serde_json::to_vec_pretty(&json).unwrap();
    assert_eq!(entries.last().unwrap().0, "MANIFEST.json.minisig");
    forgery.refused(&forged_name, &retar(&entries), "its signature by key");
    let reason = std::fs::read_to_string(
        ferry
            .inbox_sub("failed")
            .iter()
            .find(|n| n.ends_with(".reason.txt"))
            .map(|n| ferry.scratch.inbox.join("failed").join(n))
            .unwrap(),
    )
    .unwrap();
    assert!(
        reason.contains("was changed after it was signed"),
        "{reason}"
    );

    // Unsigned: a sender with write access to the inbox but no key.
    let unsigned = forgery.other_sender("unsigned", &seal_toml(None, &[]));
    ferry
        .source
        .sql("INSERT INTO \"AndroidRequests_report\" (message) VALUES ('unsigned')");
    run_config("sender", &unsigned, &["partial"]).expect_code(0);
    let name = ferry.pending()[0].clone();
    forgery.refused_pending(&name, "it is not signed");

    // Signed by another key.
    let stranger = forgery.keys.minisign("stranger");
    let foreign = forgery.other_sender("foreign", &seal_toml(Some(&stranger), &[]));
    run_config("sender", &foreign, &["partial"]).expect_code(0);
    let name = ferry.pending()[0].clone();
    forgery.refused_pending(
        &name,
        &format!(
            "it is signed by key {}, which is not one of the [bundle] trusted_keys",
            stranger.id
        ),
    );

    // Encrypted to the receiver's own recipient proves nothing: age is not a signature.
    // (This receiver has no identity, so it cannot even open it.)
    let age = forgery.keys.age("receiver");
    let encrypted = forgery.other_sender("encrypted", &seal_toml(Some(&stranger), &[&age]));
    run_config("sender", &encrypted, &["partial"]).expect_code(0);
    let name = ferry.pending()[0].clone();
    forgery.refused_pending(
        &name,
        "it is encrypted (age), and this receiver has no [bundle] identities",
    );

    // Changed after signing: one flipped bit of a genuine bundle.
    let mut flipped = forgery.partial.1.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x04;
    forgery.refused(&forgery.later_name(2, "partial"), &flipped, "");

    // Renamed: the genuine partial and complete, under later names.
    forgery.refused(
        &forgery.later_name(3, "partial"),
        &forgery.partial.1,
        &format!("it was signed as {:?}", forgery.partial.0),
    );
    forgery.refused(
        &forgery.later_name(4, "complete"),
        &forgery.complete.1,
        &format!("it was signed as {:?}", forgery.complete.0),
    );

    // Replayed: the genuine complete, under its own name, after the partial.
    forgery.refused(
        &forgery.complete.0,
        &forgery.complete.1,
        "it was applied before",
    );

    // Each refusal counts, and alerts once while the load keeps failing.
    let status: serde_json::Value =
        serde_json::from_str(&ferry.receiver(&["status", "--json"]).stdout).unwrap();
    assert_eq!(status["failed"].as_array().unwrap().len(), 8, "{status}");
    let mails = mails_to(&forgery.mailbox);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].body.contains(&forged_name), "{}", mails[0].body);
    assert!(
        mails[0].body.contains("[bundle] trusted_keys"),
        "{}",
        mails[0].body
    );

    // The genuine sender still gets through, and the receiver recovers.
    ferry.source.sql(CHANGE);
    ferry.ship_partial(&[]);
    same(ferry);

    // Withheld, then put back: a genuine complete this receiver never saw, older than the
    // complete it applied since, is skipped, not loaded: it would roll the target back.
    ferry.sender(&["complete"]).expect_code(0);
    let withheld = ferry.pending()[0].clone();
    let path = ferry.scratch.inbox.join(&withheld);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    ferry
        .source
        .sql("UPDATE \"AndroidRequests_report\" SET message = 'after the withheld one'");
    ferry.ship();
    same(ferry);
    let rows = Ferry::rows(&ferry.target, TABLE, "id");
    std::fs::write(&path, bytes).unwrap();
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(Ferry::rows(&ferry.target, TABLE, "id"), rows);
    assert!(
        ferry
            .ledger()
            .contains(&format!("{withheld} complete skipped")),
        "{:?}",
        ferry.ledger()
    );
}

#[test]
fn keys_rotate_without_a_window_of_refused_bundles() {
    let keys = Keys::new();
    let (old_sign, new_sign) = (keys.minisign("old"), keys.minisign("new"));
    let (old_age, new_age) = (keys.age("old"), keys.age("new"));
    let ferry = sealed_ferry(
        &seal_toml(Some(&old_sign), &[&old_age]),
        &open_toml(&[&old_sign], &[&old_age]),
    );
    ferry.ship();
    // 1. The receiver trusts both keys and holds both identities.
    set_bundle(
        &ferry.receiver_config,
        &open_toml(&[&old_sign, &new_sign], &[&old_age, &new_age]),
    );
    ferry.source.sql(CHANGE);
    ferry.ship_partial(&[]);
    // 2. The sender signs with the new key and encrypts to both recipients: either
    //    identity opens its bundles, with the age program too.
    set_bundle(
        &ferry.sender_config,
        &seal_toml(Some(&new_sign), &[&old_age, &new_age]),
    );
    ferry.source.sql(CHANGE);
    ferry.sender(&["partial"]).expect_code(0);
    let bundle = ferry.scratch.inbox.join(&ferry.pending()[0]);
    for age in [&old_age, &new_age] {
        let out = keys.path("rotated.tar.gz");
        age_decrypt(&age.identity, &bundle, &out).expect_code(0);
        std::fs::remove_file(out).unwrap();
    }
    ferry.receiver(&["load"]).expect_code(0);
    // 3. The sender drops the old recipient, the receiver the old key and identity.
    set_bundle(
        &ferry.sender_config,
        &seal_toml(Some(&new_sign), &[&new_age]),
    );
    set_bundle(
        &ferry.receiver_config,
        &open_toml(&[&new_sign], &[&new_age]),
    );
    ferry.source.sql(CHANGE);
    ferry.ship_partial(&[]);
    ferry.sender(&["complete"]).expect_code(0);
    ferry.receiver(&["load"]).expect_code(0);
    same(&ferry);
    assert!(
        ferry.inbox_sub("failed").is_empty(),
        "{:?}",
        ferry.inbox_sub("failed")
    );
    assert_eq!(ferry.ledger().len(), 5, "{:?}", ferry.ledger());
    // The retired key no longer gets in.
    set_bundle(
        &ferry.sender_config,
        &seal_toml(Some(&old_sign), &[&new_age]),
    );
    ferry.source.sql(CHANGE);
    ferry.sender(&["partial"]).expect_code(0);
    let refused = ferry.receiver(&["load"]);
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains(&format!("it is signed by key {}", old_sign.id)),
        "{}",
        refused.stderr
    );
}

#[test]
fn key_files_that_others_can_read_fail_check_and_a_missing_one_fails_the_job_by_name() {
    use std::os::unix::fs::PermissionsExt;
    let keys = Keys::new();
    let sign = keys.minisign("bundle");
    let age = keys.age("receiver");
    let ferry = sealed_ferry(
        &seal_toml(Some(&sign), &[&age]),
        &open_toml(&[&sign], &[&age]),
    );
    for path in [&sign.secret, &age.identity] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let check = ferry.sender(&["check"]);
    check.expect_code(1);
    assert!(
        check
            .line("FAIL sign key:")
            .contains("is readable by other users (mode 644)"),
        "{}",
        check.stdout
    );
    let check = ferry.receiver(&["check"]);
    check.expect_code(1);
    assert!(check
        .line("FAIL identity:")
        .contains("is readable by other users"));
    // A trusted key others may replace is a forger trusted.
    std::fs::set_permissions(&sign.public, std::fs::Permissions::from_mode(0o666)).unwrap();
    let check = ferry.receiver(&["check"]);
    assert!(check
        .line("FAIL trusted key:")
        .contains("is writable by other users"));

    // A key that is not there fails the job before anything is sent, and names the key.
    let mailbox = own_mailbox(&ferry);
    std::fs::remove_file(&sign.secret).unwrap();
    let run = ferry.sender(&["complete"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "[bundle] sign_key {}: cannot read it",
            sign.secret.display()
        )),
        "{}",
        run.stderr
    );
    assert!(ferry.pending().is_empty());
    let mails = mails_to(&mailbox);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].body.contains("the [bundle] key file named above"),
        "{}",
        mails[0].body
    );
    // A recipient that is not one is refused with the config.
    set_bundle(
        &ferry.sender_config,
        "[bundle]\nencrypt_to = [\"age1nope\"]\n",
    );
    let run = ferry.sender(&["check"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("\"age1nope\" is not an age recipient"),
        "{}",
        run.stderr
    );
}

#[test]
fn through_an_s3_store_bundles_stay_sealed_at_rest_and_a_receiver_without_identities_refuses_them()
{
    let keys = Keys::new();
    let sign = keys.minisign("bundle");
    let age = keys.age("receiver");
    let ferry = crate::s3::S3Ferry::new(
        REPORTS,
        REPORTS_TABLES,
        &format!("{REPORTS_PARTIAL}{}", seal_toml(Some(&sign), &[&age])),
        "",
    );
    let config = &ferry.ferry.receiver_config;
    let text = std::fs::read_to_string(config).unwrap();
    std::fs::write(config, format!("{text}\n{}", open_toml(&[&sign], &[&age]))).unwrap();

    ferry.sender(&["complete"]).expect_code(0);
    ferry.ferry.source.sql(CHANGE);
    ferry.sender(&["partial"]).expect_code(0);
    let stored = ferry.stored();
    assert_eq!(stored.len(), 2, "{stored:?}");
    for name in &stored {
        assert!(name.ends_with(".tar.gz.age"), "{name}");
        let object = ferry.bucket.get(&format!("{}{name}", ferry.prefix));
        assert!(object.starts_with(b"age-encryption.org/v1\n"));
    }
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(
        Ferry::rows(&ferry.ferry.source, TABLE, "id"),
        Ferry::rows(&ferry.ferry.target, TABLE, "id")
    );

    // The second receiver reads the same store but holds no identity: it refuses the
    // complete, records it, and loads nothing.
    let refused = ferry.second_receiver(&["load"]);
    refused.expect_code(1);
    assert!(
        refused
            .stderr
            .contains("it is encrypted (age), and this receiver has no [bundle] identities"),
        "{}",
        refused.stderr
    );
    assert!(
        ferry.second.failed().contains(&stored[0]),
        "{:?}",
        ferry.second.failed()
    );
    assert_eq!(
        ferry.second.target.sql("SELECT to_regclass('pgferry.ledger') IS NULL AND to_regclass('public.\"AndroidRequests_report\"') IS NULL"),
        "t"
    );
}
