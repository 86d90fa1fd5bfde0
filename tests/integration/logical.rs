//! Partials from a logical replication slot (guarantee 12), end to end against the
//! cluster with `wal_level = logical`: every insert, update, delete and truncate arrives,
//! the first complete hands over to the partials exactly, and the slot moves only after a
//! bundle is published.

use std::io::Write;

use crate::ferry::*;
use crate::hostile_link::Running;
use crate::util::*;

const SCHEMA: &str = r#"
CREATE TABLE stops (id integer PRIMARY KEY, code text NOT NULL UNIQUE, note text, photo text);
ALTER TABLE stops ALTER COLUMN photo SET STORAGE EXTERNAL;
CREATE TABLE visits (id integer PRIMARY KEY, stop_id integer NOT NULL REFERENCES stops (id), at timestamptz NOT NULL);
CREATE TABLE logs (id integer PRIMARY KEY, msg text);
CREATE TABLE big (id integer PRIMARY KEY, payload text);
INSERT INTO stops SELECT g, 'S' || g, NULL, repeat('p', 5000) FROM generate_series(1, 50) g;
INSERT INTO visits SELECT g, 1 + g % 50, '2026-01-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 200) g;
INSERT INTO logs SELECT g, 'old ' || g FROM generate_series(1, 20) g;
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 100) g;
"#;

const TABLES: &str = r#"["public.stops", "public.visits", "public.logs", "public.big"]"#;

/// A ferry whose sender takes partials from a slot of its own, dropped with it.
struct Logical {
    ferry: Ferry,
    slot: String,
    _cluster: LogicalCluster,
}

impl Logical {
    fn new() -> Logical {
        Logical::with(LogicalCluster::shared())
    }

    fn with(cluster: LogicalCluster) -> Logical {
        let slot = unique("pgferry_slot");
        let extra = format!("source = \"logical\"\nslot = \"{slot}\"\npublication = \"{slot}\"\n");
        let ferry = Ferry::on(Cluster::Logical, SCHEMA, TABLES, &extra, "");
        Logical {
            ferry,
            slot,
            _cluster: cluster,
        }
    }

    fn assert_all_same(&self) {
        for table in ["stops", "visits", "logs", "big"] {
            self.ferry.assert_same(table, "id");
        }
    }

    /// A session of the test's own with a transaction left open after it inserted row `id`
    /// of `logs`; returns once the insert has run. COMMIT or ROLLBACK it through the input.
    fn open_insert(&self, id: u32) -> (std::process::Child, std::process::ChildStdin) {
        let (open, mut input) = self.ferry.source.kept_session(&unique("pgferry_test_open"));
        writeln!(input, "BEGIN;\nINSERT INTO logs VALUES ({id}, 'open');").unwrap();
        input.flush().unwrap();
        wait_for(
            || {
                self.ferry.source.sql(&format!(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' \
                     AND query LIKE 'INSERT INTO logs VALUES ({id},%'"
                )) == "1"
            },
            "the open transaction to have written its row",
        );
        (open, input)
    }

    /// The slot's confirmed position, as text.
    fn confirmed(&self) -> String {
        self.ferry.source.sql(&format!(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{}'",
            self.slot
        ))
    }
}

impl Drop for Logical {
    fn drop(&mut self) {
        // A sender killed by a failing test may still hold the slot for a moment (its
        // session ends after it): retry while the slot is in use.
        let drop = format!(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{}'",
            self.slot
        );
        for _ in 0..250 {
            if self.ferry.source.sql_result(&drop).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(40));
        }
    }
}

#[test]
fn every_insert_update_delete_and_truncate_reaches_the_target() {
    let l = Logical::new();
    l.ferry.ship();
    l.assert_all_same();
    l.ferry.source.sql(
        "INSERT INTO stops VALUES (100, 'NEW', 'added', NULL); \
         INSERT INTO visits VALUES (1000, 100, now()); \
         UPDATE stops SET note = 'changed' WHERE id = 1; \
         DELETE FROM visits WHERE stop_id = 3; DELETE FROM stops WHERE id = 3; \
         UPDATE stops SET note = 'twice', code = 'S2b' WHERE id = 2; UPDATE stops SET note = 'thrice' WHERE id = 2; \
         INSERT INTO logs VALUES (999, 'gone before the truncate'); \
         TRUNCATE logs; INSERT INTO logs VALUES (1, 'after the truncate')",
    );
    l.ferry.sender(&["partial"]).expect_code(0);
    let partial = l.ferry.pending()[0].clone();
    let manifest = l.ferry.manifest(&partial);
    assert_eq!(manifest["slot"]["name"], l.slot.as_str(), "{manifest}");
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
    // The slot moved past what the bundle carries: the next partial carries nothing.
    assert_eq!(l.confirmed(), manifest["slot"]["end"].as_str().unwrap());
    l.ferry.sender(&["partial"]).expect_code(0);
    let next = l.ferry.pending()[0].clone();
    assert_eq!(
        l.ferry.manifest(&next)["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["rows"].as_u64().unwrap())
            .sum::<u64>(),
        0
    );
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}

#[test]
fn an_update_that_leaves_a_toasted_value_out_keeps_it() {
    let l = Logical::new();
    l.ferry.ship();
    // The photo is not in these updates' changes: the target keeps the one it has.
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'seen' WHERE id <= 10");
    // Inserted, then updated without its photo, in one bundle: the photo comes from the
    // insert.
    l.ferry.source.sql(
        "INSERT INTO stops VALUES (200, 'TOAST', NULL, repeat('q', 6000)); \
         UPDATE stops SET note = 'after insert' WHERE id = 200",
    );
    l.ferry.sender(&["partial"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
    assert_eq!(
        l.ferry
            .target
            .sql("SELECT length(photo) FROM stops WHERE id IN (1, 200) ORDER BY id"),
        "5000\n6000"
    );
}

#[test]
fn a_change_made_while_the_first_complete_is_dumped_arrives_once_in_the_first_partial() {
    let l = Logical::new();
    // The complete waits between its snapshot and its dump until the test has made its
    // change: the slot and the snapshot exist, the dump has not read a row.
    let gate = l.ferry.scratch.path("after-snapshot");
    let failpoint = format!("sender-after-snapshot=return({})", gate.display());
    let mut sender = Running::start_with(
        "sender",
        &l.ferry.sender_config,
        &["complete"],
        &l.ferry.scratch,
        &[("FAILPOINTS", failpoint.as_str())],
    );
    let reached = l.ferry.scratch.path("after-snapshot.reached");
    sender.wait_until(|| reached.exists(), "the complete to hold its snapshot");
    l.ferry
        .source
        .sql("INSERT INTO stops VALUES (300, 'DURING', 'made during the complete', NULL)");
    std::fs::write(&gate, b"").unwrap();
    sender.finish().expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(
        l.ferry
            .target
            .sql("SELECT count(*) FROM stops WHERE id = 300"),
        "0",
        "the complete holds a change made after its snapshot"
    );
    l.ferry.sender(&["partial"]).expect_code(0);
    let partial = l.ferry.pending()[0].clone();
    let counts: Vec<(String, u64)> = l.ferry.manifest(&partial)["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["rows"].as_u64() != Some(0))
        .map(|t| {
            (
                t["table"]["name"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![("stops".to_string(), 1)],
        "the change is not in the partial exactly once"
    );
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}

#[test]
fn a_sender_killed_between_the_publish_and_the_slot_move_loses_nothing() {
    let l = Logical::new();
    l.ferry.ship();
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'first' WHERE id = 5; DELETE FROM visits WHERE id = 7");
    let before = l.confirmed();
    let run = run_with(
        "sender",
        &["-c", l.ferry.sender_config.to_str().unwrap(), "partial"],
        &[("FAILPOINTS", "sender-before-slot-advance=return")],
    );
    assert_ne!(run.code, 0, "the fail point did not stop the sender");
    assert_eq!(l.ferry.pending().len(), 1, "the bundle was not published");
    assert_eq!(l.confirmed(), before, "the slot moved before it should");
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'second' WHERE id = 5");
    l.ferry.sender(&["partial"]).expect_code(0);
    // Both bundles load: the second carries the first's changes again, and they converge.
    l.ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(l.ferry.ledger().len(), 3, "{:?}", l.ferry.ledger());
    l.assert_all_same();
}

#[test]
fn a_column_added_on_the_primary_fails_the_partial_by_name_until_a_complete() {
    let l = Logical::new();
    l.ferry.ship();
    l.ferry
        .source
        .sql("UPDATE logs SET msg = 'before' WHERE id = 1");
    l.ferry
        .source
        .sql("ALTER TABLE logs ADD COLUMN level integer; UPDATE logs SET level = 1 WHERE id = 2");
    let run = l.ferry.sender(&["partial"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("table public.logs had the columns (id, msg)")
            && run.stderr.contains("run `sender complete`"),
        "{}",
        run.stderr
    );
    assert_eq!(l.ferry.pending(), Vec::<String>::new());
    // The complete carries the new column (recreated on the target) and the slot moves
    // past the old changes.
    let recreate = l.ferry.scratch.write(
        "receiver-recreate.toml",
        &(std::fs::read_to_string(&l.ferry.receiver_config).unwrap()
            + "\n[complete]\non_schema_change = \"recreate\"\n"),
    );
    l.ferry.sender(&["complete"]).expect_code(0);
    run_config("receiver", &recreate, &["load"]).expect_code(0);
    l.ferry.source.sql("UPDATE logs SET level = 2 WHERE id = 3");
    l.ferry.sender(&["partial"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}

#[test]
fn a_table_without_a_key_is_refused_by_name() {
    let l = Logical::new();
    l.ferry.ship();
    l.ferry
        .source
        .sql("ALTER TABLE logs DROP CONSTRAINT logs_pkey");
    for job in ["partial", "complete"] {
        let run = l.ferry.sender(&[job]);
        assert_ne!(run.code, 0, "{job}");
        assert!(
            run.stderr.contains("table public.logs has no"),
            "{job}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_transaction_open_across_two_partials_arrives_when_it_commits() {
    let l = Logical::new();
    l.ferry.ship();
    // A session of the test's own, its transaction open while a partial is made.
    let (mut open, mut input) = l.open_insert(500);
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'meanwhile' WHERE id = 9");
    l.ferry.sender(&["partial"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(
        l.ferry
            .target
            .sql("SELECT count(*) FROM logs WHERE id = 500"),
        "0"
    );
    writeln!(input, "COMMIT;").unwrap();
    drop(input);
    assert!(open.wait().unwrap().success());
    l.ferry.sender(&["partial"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}

#[test]
fn check_names_what_the_mode_needs_and_drop_slot_removes_the_slot_and_publication() {
    let l = Logical::new();
    // `check` creates nothing: the state dir is the operator's to make.
    std::fs::create_dir_all(l.ferry.scratch.path("sender-state")).unwrap();
    let run = l.ferry.sender(&["check"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("wal_level") && run.stdout.contains("logical"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("slot {}", l.slot))
            && run.stdout.contains("does not exist yet"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("captured tables") && run.stdout.contains("4 table(s)"),
        "{}",
        run.stdout
    );
    l.ferry.ship();
    let run = l.ferry.sender(&["check"]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("of WAL (max_retained_wal 4.0 GiB)"),
        "{}",
        run.stdout
    );
    let status = l.ferry.sender(&["status", "--json"]);
    status.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["slot"]["name"], l.slot.as_str(), "{status}");
    assert_eq!(status["slot"]["exists"], true, "{status}");
    assert!(
        status["slot"]["retained_wal"].as_i64().is_some(),
        "{status}"
    );
    // A table the primary could not publish safely fails check by name.
    l.ferry
        .source
        .sql("ALTER TABLE logs REPLICA IDENTITY NOTHING");
    let run = l.ferry.sender(&["check"]);
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("table public.logs has no replica identity"),
        "{}",
        run.stdout
    );
    l.ferry
        .source
        .sql("ALTER TABLE logs REPLICA IDENTITY DEFAULT");

    let run = l.ferry.sender(&["drop-slot"]);
    run.expect_code(0);
    let gone = format!(
        "SELECT (SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{0}') + (SELECT count(*) FROM pg_publication WHERE pubname = '{0}')",
        l.slot
    );
    assert_eq!(l.ferry.source.sql(&gone), "0");
    // Without the slot a partial fails by name and says what to do.
    let run = l.ferry.sender(&["partial"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("replication slot {} does not exist", l.slot))
            && run.stderr.contains("run `sender complete`"),
        "{}",
        run.stderr
    );
}

/// `max_slot_wal_keep_size` lowered for one test, set back however it ends.
struct SmallSlotLimit<'d>(&'d Db);

impl<'d> SmallSlotLimit<'d> {
    fn set(db: &'d Db) -> SmallSlotLimit<'d> {
        db.sql("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'");
        db.sql("SELECT pg_reload_conf()");
        SmallSlotLimit(db)
    }
}

impl Drop for SmallSlotLimit<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .sql_result("ALTER SYSTEM RESET max_slot_wal_keep_size");
        let _ = self.0.sql_result("SELECT pg_reload_conf()");
    }
}

#[test]
fn a_lost_slot_fails_the_partial_and_the_next_complete_makes_it_anew() {
    // The cluster's setting changes for this test: no other test's slot may be near it.
    let l = Logical::with(LogicalCluster::alone());
    l.ferry.ship();
    l.ferry.source.sql("CREATE TABLE waste (x text)");
    let limit = SmallSlotLimit::set(&l.ferry.source);
    let status = format!(
        "SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{}'",
        l.slot
    );
    // WAL past the limit, then checkpoints, until PostgreSQL invalidates the slot (the
    // setting reaches the checkpointer a moment after the reload).
    wait_for(
        || {
            l.ferry.source.sql(
                "INSERT INTO waste SELECT repeat(md5(g::text), 40) FROM generate_series(1, 2000) g",
            );
            l.ferry.source.sql("SELECT pg_switch_wal()");
            l.ferry.source.sql("CHECKPOINT");
            l.ferry.source.sql(&status) == "lost"
        },
        "PostgreSQL to invalidate the slot",
    );
    drop(limit);
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'lost with the slot' WHERE id = 4");
    let run = l.ferry.sender(&["partial"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "replication slot {} was invalidated by PostgreSQL",
            l.slot
        )) && run.stderr.contains("run `sender complete`"),
        "{}",
        run.stderr
    );
    // The complete makes the slot anew and carries what the lost slot held.
    l.ferry.ship();
    assert_ne!(l.ferry.source.sql(&status), "lost");
    l.ferry.source.sql("DELETE FROM visits WHERE id = 11");
    l.ferry.sender(&["partial"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}

/// Starts `sender complete` held between its snapshot and its dump; returns it once there.
fn start_held_complete(l: &Logical, name: &str) -> (Running, std::path::PathBuf) {
    let gate = l.ferry.scratch.path(name);
    let failpoint = format!("sender-after-snapshot=return({})", gate.display());
    let mut sender = Running::start_with(
        "sender",
        &l.ferry.sender_config,
        &["complete"],
        &l.ferry.scratch,
        &[("FAILPOINTS", failpoint.as_str())],
    );
    let reached = l.ferry.scratch.path(&format!("{name}.reached"));
    sender.wait_until(|| reached.exists(), "the complete to hold its snapshot");
    (sender, gate)
}

#[test]
fn a_later_complete_keeps_the_slot_and_the_partials_after_it_converge() {
    let l = Logical::new();
    l.ferry.ship();
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'before the second complete' WHERE id = 6");
    let (sender, gate) = start_held_complete(&l, "second-complete");
    // After the second complete's snapshot: in the slot's stream only.
    l.ferry
        .source
        .sql("UPDATE stops SET note = 'during the second complete' WHERE id = 7; DELETE FROM visits WHERE id = 8");
    std::fs::write(&gate, b"").unwrap();
    sender.finish().expect_code(0);
    let complete = l.ferry.pending()[0].clone();
    let start = l.ferry.manifest(&complete)["slot"]["start"]
        .as_str()
        .unwrap()
        .to_string();
    // Published, the complete moved the slot to where it started.
    assert_eq!(l.confirmed(), start);
    l.ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(
        l.ferry.target.sql("SELECT note FROM stops WHERE id = 7"),
        ""
    );
    // The partial replays from there: the change made before the snapshot again (it
    // converges), the ones during it for the first time.
    l.ferry.sender(&["partial"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}

#[test]
fn a_slot_that_keeps_too_much_wal_fails_the_partial_after_it_is_published() {
    let l = Logical::new();
    let small = std::fs::read_to_string(&l.ferry.sender_config)
        .unwrap()
        .replace(
            "source = \"logical\"",
            "source = \"logical\"\nmax_retained_wal = \"64KiB\"",
        );
    let config = l.ferry.scratch.write("sender-small.toml", &small);
    run_config("sender", &config, &["complete"]).expect_code(0);
    l.ferry.receiver(&["load"]).expect_code(0);
    // A transaction left open holds the slot's restart point where it began, however far
    // the WAL goes on.
    let (mut open, mut input) = l.open_insert(600);
    l.ferry
        .source
        .sql("UPDATE big SET payload = repeat(payload, 20); UPDATE big SET payload = md5(payload)");
    let run = run_config("sender", &config, &["partial"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains(&format!("replication slot {} keeps", l.slot))
            && run.stderr.contains("over max_retained_wal (64.0 kiB)"),
        "{}",
        run.stderr
    );
    // The bundle was published before the alert: its changes are not held back.
    assert_eq!(l.ferry.pending().len(), 1);
    writeln!(input, "ROLLBACK;").unwrap();
    drop(input);
    assert!(open.wait().unwrap().success());
    l.ferry.receiver(&["load"]).expect_code(0);
    l.assert_all_same();
}
