//! PostgreSQL down or dying, on either side, without touching the shared clusters: a
//! source port nothing listens on, a `pg_dump` or `psql` child killed mid-stream, a target
//! session terminated by the server. The job fails naming the step, nothing is half-done,
//! and the next normal run succeeds.

use crate::ferry::*;
use crate::hostile_link::{
    assert_failed, children_named, cmdline, leftovers, published, signal, start_held_upload,
    Running, BIG, BIG_TABLES,
};
use crate::util::*;

/// A copy of the sender config whose source port has nothing listening.
fn source_down_config(ferry: &Ferry) -> (std::path::PathBuf, u16) {
    let text = std::fs::read_to_string(&ferry.sender_config).unwrap();
    let from = format!("port = {}\nuser", ferry.source.port);
    assert!(text.contains(&from), "no source port in {text}");
    let port = free_port();
    let broken = text.replace(&from, &format!("port = {port}\nuser"));
    (
        ferry.scratch.write("sender-source-down.toml", &broken),
        port,
    )
}

/// The bundle an `error: make bundle NAME in ...` line names.
fn bundle_in_error(stderr: &str) -> String {
    let (_, rest) = stderr
        .split_once("error: make bundle ")
        .unwrap_or_else(|| panic!("no make bundle error in\n{stderr}"));
    let name = rest.split(' ').next().unwrap().to_string();
    assert!(
        name.starts_with("pgferry-") && name.ends_with("-complete.tar.gz"),
        "{name}"
    );
    name
}

fn watermark_file(ferry: &Ferry) -> Option<String> {
    std::fs::read_to_string(ferry.scratch.path("sender-state/watermark.json")).ok()
}

/// Two rows: enough to see whether anything moved.
const SMALL: &str =
    "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'one'), (2, 'two');";

#[test]
fn a_primary_that_is_down_fails_before_anything_is_sent_and_keeps_the_mark() {
    let ferry = Ferry::new(SMALL, r#"["t"]"#);
    ferry.ship();
    let mark = watermark_file(&ferry);
    assert!(
        mark.is_some(),
        "a complete bundle records the high-water mark"
    );
    let before = ferry.pending();

    let (config, port) = source_down_config(&ferry);
    let run = run_config("sender", &config, &["complete"]);
    assert_failed(
        &run,
        1,
        &format!(
            "psql session with 127.0.0.1:{port}/{} ended (exit status: 2): psql: error: connection to server at \"127.0.0.1\", port {port} failed: Connection refused",
            ferry.source.name
        ),
    );
    assert_eq!(ferry.pending(), before, "something was uploaded");
    assert_eq!(watermark_file(&ferry), mark, "the high-water mark moved");

    ferry.source.sql("INSERT INTO t VALUES (3, 'three')");
    ferry.ship();
    ferry.assert_same("t", "id");
}

#[test]
fn a_pg_dump_killed_mid_dump_fails_naming_the_dump_and_the_next_run_ships() {
    let ferry = Ferry::new(BIG, BIG_TABLES);
    // The data pg_dump is connected, in the snapshot, and waits for the test's lock on
    // `big`: it cannot have finished, whatever the machine's speed.
    let (sender, lock) = start_held_upload(&ferry, &ferry.sender_config);
    let dumping: Vec<u32> = children_named(sender.pid(), "pg_dump")
        .into_iter()
        .filter(|&p| cmdline(p).contains("--data-only"))
        .collect();
    assert_eq!(dumping.len(), 1, "no single data pg_dump: {dumping:?}");
    for &p in &dumping {
        signal(p, "KILL");
    }
    lock.release();
    let run = sender.finish();
    // A failed dump over a healthy link removes its own temporary file.
    assert_eq!(leftovers(&ferry), Vec::<String>::new());
    let bundle = bundle_in_error(&run.stderr);
    let env = Env::get();
    assert_failed(
        &run,
        1,
        &format!(
            "error: make bundle {bundle} in {}@127.0.0.1:{}:{}: stream the data from pg_dump into the bundle: pg_dump failed (killed by signal 9)",
            env.var("SSH_USER"),
            env.var("SSH_PORT"),
            ferry.scratch.inbox.display()
        ),
    );
    assert_eq!(published(&ferry), Vec::<String>::new());

    ferry.sender(&["complete"]).expect_code(0);
    assert_eq!(leftovers(&ferry), Vec::<String>::new());
    assert_eq!(published(&ferry).len(), 1);
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("big", "id");
}

/// A target holding older contents of `big`, and a complete bundle of the new ones.
fn pending_big_bundle() -> Ferry {
    let ferry = Ferry::new(BIG, BIG_TABLES);
    ferry.target.sql(
        "CREATE TABLE big (id integer PRIMARY KEY, payload text); INSERT INTO big VALUES (-1, 'before')",
    );
    ferry.sender(&["complete"]).expect_code(0);
    ferry
}

/// Starts `receiver load` while the test holds an ACCESS EXCLUSIVE lock on the target's
/// `big`, and returns once the load's session is provably held: waiting for that lock
/// where it first touches `big`, inside its transaction (begun, the ledger's DDL run): the
/// staging table shaped like it, at the start of the data. Until [`HeldLock::release`]
/// the load can neither write a row nor commit, however fast or slow the machine; the
/// receiver meanwhile streams the data into psql's input until the pipe is full, so
/// psql's input cannot yet hold the COMMIT.
pub fn start_held_load(ferry: &Ferry) -> (Running, HeldLock, Waiter) {
    start_load_held_at(ferry, "big", "ACCESS EXCLUSIVE")
}

/// Starts `receiver load` while the test holds a `mode` lock on the target's `table`, and
/// returns once the load's session waits for it inside its transaction.
pub fn start_load_held_at(ferry: &Ferry, table: &str, mode: &str) -> (Running, HeldLock, Waiter) {
    let lock = ferry.target.hold_lock(table, mode);
    let mut receiver = Running::start(
        "receiver",
        &ferry.receiver_config,
        &["load"],
        &ferry.scratch,
    );
    let mut held = None;
    receiver.wait_until(
        || {
            held = lock.waiters().into_iter().find(|w| w.in_transaction);
            held.is_some()
        },
        &format!("the load's transaction to wait for the test's lock on {table}"),
    );
    (receiver, lock, held.unwrap())
}

/// The killed load changed nothing; the next load applies the bundle exactly once.
fn assert_unchanged_then_applied_once(ferry: &Ferry, bundle: &str) {
    let busy = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        ferry.target.name
    );
    wait_for(
        || ferry.target.sql(&busy) == "0",
        "the killed load's session to end",
    );
    assert_eq!(
        ferry
            .target
            .sql("SELECT string_agg(id || ' ' || payload, ',') FROM big"),
        "-1 before",
        "the target changed"
    );
    assert_eq!(ferry.ledger(), Vec::<String>::new());
    assert_eq!(
        ferry.pending(),
        vec![bundle.to_string()],
        "the bundle is no longer pending"
    );

    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("big", "id");
    let ledger = ferry.ledger();
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert!(ledger[0].starts_with(bundle), "{ledger:?}");
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.ledger(), ledger, "a second load changed the ledger");
}

#[test]
fn a_psql_killed_mid_load_leaves_the_target_unchanged_and_the_next_load_applies_once() {
    let ferry = pending_big_bundle();
    let bundle = ferry.pending()[0].clone();
    let (receiver, lock, _) = start_held_load(&ferry);
    let psqls = children_named(receiver.pid(), "psql");
    assert!(!psqls.is_empty(), "no psql child of the receiver");
    for p in psqls {
        signal(p, "KILL");
    }
    let run = receiver.finish();
    // Its session, orphaned, gets the lock, finds no more input and rolls back.
    lock.release();
    assert_failed(&run, 1, &format!("error: load bundle {bundle}: load data/"));
    assert_failed(
        &run,
        1,
        &format!(
            ": load into 127.0.0.1:{}/{} failed, nothing was changed (signal: 9 (SIGKILL))",
            ferry.target.port, ferry.target.name
        ),
    );
    assert_unchanged_then_applied_once(&ferry, &bundle);
}

#[test]
fn a_target_session_terminated_mid_load_leaves_the_target_unchanged_and_the_next_load_applies_once()
{
    let ferry = pending_big_bundle();
    let bundle = ferry.pending()[0].clone();
    let (receiver, lock, load) = start_held_load(&ferry);
    assert_eq!(
        ferry
            .target
            .sql(&format!("SELECT pg_terminate_backend({})", load.pid)),
        "t"
    );
    // Gone before the lock is released: its waiting statement never ran.
    wait_for(
        || {
            ferry.target.sql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = {}",
                load.pid
            )) == "0"
        },
        "the terminated session to end",
    );
    lock.release();
    let run = receiver.finish();
    // While psql waits for its statement, or while the receiver's writes go out: either
    // way psql's own reason.
    assert_failed(&run, 1, &format!("error: load bundle {bundle}: "));
    assert_failed(
        &run,
        1,
        &format!(
            "load into 127.0.0.1:{}/{} failed, nothing was changed (exit status: 2): ",
            ferry.target.port, ferry.target.name
        ),
    );
    assert_failed(
        &run,
        1,
        "FATAL:  terminating connection due to administrator command",
    );
    assert_unchanged_then_applied_once(&ferry, &bundle);
}
