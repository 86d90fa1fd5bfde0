//! Unit tests of config parsing: the example files and every class of error.

use super::*;

fn example(name: &str) -> (String, PathBuf) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../config")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (text, path)
}

#[test]
fn the_example_configs_parse() {
    let (text, path) = example("sender.toml");
    let sender = SenderSettings::parse(&text, &path).unwrap();
    assert_eq!(
        sender.source.tables[0].to_string(),
        "public.AndroidRequests_*"
    );
    assert_eq!(sender.partial.tables[0].changed_at, "timeStamp");
    assert_eq!(sender.schedule.partial.cron(), "0 */5 * * * *");
    assert_eq!(sender.files[0].referenced_by[0].column, "imageName");
    let (text, path) = example("receiver.toml");
    let receiver = ReceiverSettings::parse(&text, &path).unwrap();
    assert_eq!(receiver.retention.complete.0.as_secs(), 4 * 86_400);
    assert_eq!(
        receiver.target.connection().describe(),
        "localhost:5432/transapp"
    );
}

fn sender_error(edit: impl Fn(String) -> String) -> String {
    let (text, _) = example("sender.toml");
    let text = edit(text);
    SenderSettings::parse(&text, Path::new("/etc/pgferry/sender.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let err = sender_error(|t| t.replace("port = 22\n", "port = 22\nhots = \"x\"\n"));
    let line = example_line("port = 22") + 1;
    assert!(err.starts_with(&format!("config /etc/pgferry/sender.toml, line {line}, key remote.hots: unknown key, expected one of: `host`")), "{err}");
}

#[test]
fn missing_key_is_named() {
    let err = sender_error(|t| t.replace("overlap = \"2m\"", ""));
    assert!(
        err.contains("key partial.overlap: required key is missing"),
        "{err}"
    );
}

#[test]
fn wrong_type_is_named() {
    let err = sender_error(|t| t.replace("port = 22", "port = \"twenty-two\""));
    let line = example_line("port = 22");
    assert!(err.contains(&format!("line {line}, key remote.port: invalid type: string \"twenty-two\", expected an integer (0-65535)")), "{err}");
}

/// The 1-based line of the example sender config that starts with `start`.
fn example_line(start: &str) -> usize {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/sender.toml"
    ))
    .unwrap();
    1 + text.lines().position(|l| l.starts_with(start)).unwrap()
}

#[test]
fn bad_duration_is_named() {
    let err = sender_error(|t| t.replace("overlap = \"2m\"", "overlap = \"2 fortnights\""));
    assert!(
        err.contains("key partial.overlap: invalid duration \"2 fortnights\""),
        "{err}"
    );
}

#[test]
fn bad_cron_is_named() {
    let err =
        sender_error(|t| t.replace("partial = \"*/5 * * * *\"", "partial = \"every 5 minutes\""));
    assert!(
        err.contains("key schedule.partial: invalid cron schedule \"every 5 minutes\""),
        "{err}"
    );
}

#[test]
fn a_password_in_the_file_is_refused() {
    let err = sender_error(|t| {
        t.replace(
            "dbname = \"transapp\"",
            "dbname = \"transapp\"\npassword = \"hunter2\"",
        )
    });
    assert!(
        err.contains("key source.password: passwords never go into the config file"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
}

#[test]
fn duplicate_file_sets_are_refused() {
    let err = sender_error(|t| t.replace("name = \"migrations\"", "name = \"images\""));
    assert!(
        err.contains("key files[1].name: file set \"images\" is defined twice"),
        "{err}"
    );
}

#[test]
fn bad_size_is_named() {
    let (text, _) = example("receiver.toml");
    let text = text.replace("# min_free = \"1GiB\"", "min_free = \"lots\"");
    let err = ReceiverSettings::parse(&text, Path::new("r.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key inbox.min_free: invalid size \"lots\""),
        "{err}"
    );
}

#[test]
fn a_bad_enum_value_is_named() {
    let (text, _) = example("receiver.toml");
    let text = text.replace(
        "on_schema_change = \"fail\"",
        "on_schema_change = \"ignore\"",
    );
    let err = ReceiverSettings::parse(&text, Path::new("r.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("key complete.on_schema_change: unknown variant `ignore`, expected `fail` or `recreate`"), "{err}");
}

#[test]
fn the_logical_source_has_defaults_and_refuses_what_it_cannot_use() {
    let (text, path) = example("sender.toml");
    let sender = SenderSettings::parse(&text, &path).unwrap();
    assert_eq!(sender.partial.source, ChangeSource::ChangedAt);
    assert_eq!(
        (
            sender.partial.slot.as_str(),
            sender.partial.publication.as_str()
        ),
        ("pgferry", "pgferry")
    );
    assert_eq!(sender.partial.max_retained_wal, Size(4 << 30));
    // Logical mode captures source.tables: [[partial.tables]] would mean nothing.
    let logical = |text: &str| {
        text.replace(
            "overlap = \"2m\"",
            "overlap = \"2m\"\nsource = \"logical\"\nslot = \"Bad-Name\"",
        )
    };
    let err = sender_error(|t| logical(&t));
    assert!(
        err.contains("partial.tables") && err.contains("remove the [[partial.tables]] entries"),
        "{err}"
    );
    let err = sender_error(|t| {
        let t = logical(&t);
        let start = t.find("\n[[partial.tables]]\n").unwrap();
        let end = t[start..].find("\n\n").unwrap() + start;
        format!("{}{}", &t[..start], &t[end..])
    });
    assert!(
        err.contains("partial.slot") && err.contains("lowercase letters, digits or underscores"),
        "{err}"
    );
}

#[test]
fn the_commented_s3_examples_parse() {
    let (text, path) = example("sender.toml");
    // The SFTP [remote] replaced by the commented S3 one.
    let start = text.find("[remote]").unwrap();
    let end = text.find("# Or, instead of the SFTP keys").unwrap();
    let s3: String = text[end..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    let sender_text = format!("{}{s3}{}", &text[..start], &text[end..]);
    let sender = SenderSettings::parse(&sender_text, &path).unwrap();
    assert_eq!(sender.remote.keep_completes(), Some(2));
    assert_eq!(sender.remote.describe(), "s3://pgferry/transapp/");
    let (text, path) = example("receiver.toml");
    let from = text.find("# Or fetch from an S3-compatible store").unwrap();
    let s3: String = text[from..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    let receiver_text = text.replacen(
        &text[from..from + text[from..].find("\n").unwrap() + 1],
        &s3,
        1,
    );
    let receiver = ReceiverSettings::parse(&receiver_text, &path).unwrap();
    let store = receiver.inbox.store.unwrap();
    assert!(store.path_style);
    assert_eq!(store.bucket, "pgferry");
}

/// `text` with the commented block that starts at `# [bundle]` uncommented.
fn uncomment_bundle(text: &str) -> String {
    let start = text.find("# [bundle]").unwrap();
    let block: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    let end = start + text[start..].find("\n\n").unwrap();
    format!("{}{block}{}", &text[..start], &text[end..])
}

#[test]
fn the_commented_bundle_keys_parse_and_a_config_without_them_seals_nothing() {
    let (text, path) = example("sender.toml");
    let sender = SenderSettings::parse(&text, &path).unwrap();
    assert!(sender.bundle.sign_key.is_none() && !sender.bundle.encrypts());
    let sealed = SenderSettings::parse(&uncomment_bundle(&text), &path).unwrap();
    assert_eq!(
        sealed.bundle.sign_key.as_deref(),
        Some(Path::new("/etc/pgferry/bundle.key"))
    );
    assert_eq!(sealed.bundle.encrypt_to.len(), 1);
    let (text, path) = example("receiver.toml");
    let receiver = ReceiverSettings::parse(&text, &path).unwrap();
    assert!(receiver.bundle.trusted_keys.is_empty() && receiver.bundle.identities.is_empty());
    let opening = ReceiverSettings::parse(&uncomment_bundle(&text), &path).unwrap();
    assert_eq!(opening.bundle.trusted_keys.len(), 1);
    assert_eq!(opening.bundle.identities.len(), 1);
    // A recipient that is not one is named, with its key and line.
    let err = sender_error(|t| uncomment_bundle(&t).replace("[\"age1ql3z7", "[\"age1zz3z7"));
    assert!(
        err.contains("bundle.encrypt_to") && err.contains("is not an age recipient"),
        "{err}"
    );
    // A receiver's key in the sender's [bundle] is named as unknown there.
    let err = sender_error(|t| uncomment_bundle(&t).replace("sign_key =", "trusted_keys ="));
    assert!(err.contains("trusted_keys"), "{err}");
}
