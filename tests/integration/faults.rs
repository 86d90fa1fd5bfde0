//! Complete bundles under attack: killed processes, damaged or hostile bundles, unknown
//! host keys. Nothing half-done is ever loaded, and the next run recovers.

use std::io::Write;
use std::process::Command;

use crate::ferry::*;
use crate::hostile_link::start_held_upload;
use crate::hostile_pg::start_held_load;
use crate::util::*;

/// Enough rows that a dump and a load take a moment to stream.
const BIG: &str = r#"
CREATE TABLE big (id integer PRIMARY KEY, payload text);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 400000) g;
"#;

#[test]
fn a_sender_killed_mid_upload_leaves_nothing_loadable_and_the_next_run_cleans_up() {
    let ferry = Ferry::new(BIG, r#"["big"]"#);
    // Held with its upload open and its dumps waiting for the test's lock: the kill
    // lands mid-upload, never after the publish.
    let (sender, lock) = start_held_upload(&ferry, &ferry.sender_config);
    sender.kill();
    lock.release();
    let leftovers = ferry.pending();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(
        leftovers[0].starts_with(".pgferry-") && leftovers[0].ends_with("-complete.tar.gz.part")
    );
    // The receiver ignores it.
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.ledger(), Vec::<String>::new());
    assert_eq!(ferry.target.sql("SELECT to_regclass('big') IS NULL"), "t");
    // The next run removes it and publishes a whole bundle.
    ferry.sender(&["complete"]).expect_code(0);
    let now = ferry.pending();
    assert_eq!(now.len(), 1, "{now:?}");
    assert!(!now[0].ends_with(".part"));
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.target.sql("SELECT count(*) FROM big"), "400000");
}

#[test]
fn a_receiver_killed_mid_load_leaves_the_target_unchanged_and_the_next_load_applies_once() {
    let ferry = Ferry::new(BIG, r#"["big"]"#);
    ferry.target.sql("CREATE TABLE big (id integer PRIMARY KEY, payload text); INSERT INTO big VALUES (-1, 'before')");
    ferry.sender(&["complete"]).expect_code(0);
    // Held inside its transaction, waiting for the test's lock: it cannot have committed.
    let (receiver, lock, _) = start_held_load(&ferry);
    receiver.kill();
    // psql, orphaned, gets the lock, loses its input and the transaction rolls back.
    lock.release();
    let target = &ferry.target;
    let busy = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        target.name
    );
    wait_for(
        || target.sql(&busy) == "0",
        "the killed load's session to end",
    );
    assert_eq!(
        target.sql("SELECT string_agg(id || ' ' || payload, ',') FROM big"),
        "-1 before"
    );
    assert_eq!(ferry.ledger(), Vec::<String>::new());
    assert_eq!(ferry.pending().len(), 1);
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(target.sql("SELECT count(*) FROM big"), "400000");
    assert_eq!(ferry.ledger().len(), 1);
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.ledger().len(), 1);
    assert_eq!(target.sql("SELECT count(*) FROM big"), "400000");
}

/// Ships one good bundle, then puts `damage`d copies of another into the inbox.
fn refused(damage: impl Fn(&std::path::Path)) -> (Ferry, crate::util::Run) {
    let ferry = Ferry::new(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one');",
        r#"["t"]"#,
    );
    ferry.ship();
    ferry.source.sql("INSERT INTO t VALUES (2, 'two')");
    ferry.sender(&["complete"]).expect_code(0);
    let bundle = ferry.scratch.inbox.join(&ferry.pending()[0]);
    damage(&bundle);
    let run = ferry.receiver(&["load"]);
    (ferry, run)
}

fn assert_refused(ferry: &Ferry, run: &crate::util::Run, problem: &str) {
    run.expect_code(1);
    assert!(
        run.stderr.contains("failed verification: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(problem),
        "expected {problem:?} in\n{}",
        run.stderr
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
    let failed = ferry.inbox_sub("failed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[1].ends_with(".reason.txt"));
    assert_eq!(
        ferry.target.sql("SELECT string_agg(id::text, ',') FROM t"),
        "1",
        "the target changed"
    );
    assert_eq!(ferry.ledger().len(), 1);
}

#[test]
fn a_bundle_with_one_flipped_byte_goes_to_failed() {
    let (ferry, run) = refused(|path| {
        let mut bytes = std::fs::read(path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x20;
        std::fs::write(path, bytes).unwrap();
    });
    assert_refused(&ferry, &run, "");
}

#[test]
fn a_truncated_bundle_goes_to_failed() {
    let (ferry, run) = refused(|path| {
        let bytes = std::fs::read(path).unwrap();
        std::fs::write(path, &bytes[..bytes.len() * 2 / 3]).unwrap();
    });
    assert_refused(&ferry, &run, "");
}

/// Replaces a bundle with a hand-made one holding `entry` and a matching manifest.
fn craft(path: &std::path::Path, build: impl Fn(&mut tar::Builder<Vec<u8>>)) {
    let mut builder = tar::Builder::new(Vec::new());
    build(&mut builder);
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

fn raw_entry(builder: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, data: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    if kind == tar::EntryType::Symlink {
        header.set_link_name("/etc/passwd").unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
}

#[test]
fn a_bundle_with_a_parent_path_goes_to_failed() {
    let (ferry, run) = refused(|path| {
        craft(path, |b| {
            raw_entry(
                b,
                b"files/images/../../../../tmp/pgferry-escape",
                tar::EntryType::Regular,
                b"x",
            )
        })
    });
    assert_refused(&ferry, &run, "entry \"files/images/../../../../tmp/pgferry-escape\" refused: parent directory (..) in path");
}

#[test]
fn a_bundle_with_an_absolute_path_goes_to_failed() {
    let (ferry, run) = refused(|path| {
        craft(path, |b| {
            raw_entry(b, b"/tmp/pgferry-absolute", tar::EntryType::Regular, b"x")
        })
    });
    assert_refused(
        &ferry,
        &run,
        "entry \"/tmp/pgferry-absolute\" refused: absolute path",
    );
}

#[test]
fn a_bundle_with_a_symlink_goes_to_failed() {
    let (ferry, run) = refused(|path| {
        craft(path, |b| {
            raw_entry(b, b"files/images/link", tar::EntryType::Symlink, b"")
        })
    });
    assert_refused(&ferry, &run, "entry \"files/images/link\" is a symbolic link; links, directories and devices are refused");
}

#[test]
fn an_unknown_host_key_sends_nothing_and_names_the_fingerprint() {
    let ferry = Ferry::new("CREATE TABLE t (id int PRIMARY KEY)", r#"["t"]"#);
    let empty = ferry.scratch.write("empty_known_hosts", "");
    let text = std::fs::read_to_string(&ferry.sender_config)
        .unwrap()
        .replace(Env::get().var("SSH_KNOWN_HOSTS"), empty.to_str().unwrap());
    std::fs::write(&ferry.sender_config, text).unwrap();
    let run = ferry.sender(&["complete"]);
    run.expect_code(1);
    let env = Env::get();
    let expected = format!(
        "host key of {}:{} ({}) is not listed in {}; nothing was sent",
        env.var("SSH_HOST"),
        env.var("SSH_PORT"),
        fingerprint(env.var("SSH_HOST_PUBKEY")),
        empty.display()
    );
    assert!(
        run.stderr.contains(&expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
    assert!(!ferry.scratch.inbox.exists(), "the inbox was touched");
}

#[test]
fn a_changed_host_key_sends_nothing_and_names_the_fingerprint() {
    let ferry = Ferry::new("CREATE TABLE t (id int PRIMARY KEY)", r#"["t"]"#);
    let key = ferry.scratch.path("other_host_key");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(status.success());
    let env = Env::get();
    let other = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other.split_whitespace().collect();
    let known = ferry.scratch.write(
        "changed_known_hosts",
        &format!(
            "[{}]:{} {} {}\n",
            env.var("SSH_HOST"),
            env.var("SSH_PORT"),
            other_key[0],
            other_key[1]
        ),
    );
    let text = std::fs::read_to_string(&ferry.sender_config)
        .unwrap()
        .replace(env.var("SSH_KNOWN_HOSTS"), known.to_str().unwrap());
    std::fs::write(&ferry.sender_config, text).unwrap();
    let run = ferry.sender(&["complete"]);
    run.expect_code(1);
    let expected = format!(
        "host key of {}:{} ({}) DOES NOT MATCH the key listed in {}; nothing was sent",
        env.var("SSH_HOST"),
        env.var("SSH_PORT"),
        fingerprint(env.var("SSH_HOST_PUBKEY")),
        known.display()
    );
    assert!(
        run.stderr.contains(&expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
    assert!(!ferry.scratch.inbox.exists(), "the inbox was touched");
}
