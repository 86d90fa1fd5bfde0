//! A complete bundle that replaces tables the target already has (guarantee 11): readers
//! are never blocked and see the old rows until the commit; only the rows that changed
//! are written; the table stays, with what the target built on it.

use crate::ferry::*;
use crate::hostile_pg::start_load_held_at;

const STOPS: &str = r#"
CREATE TABLE stops (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE,
    amount numeric,
    doc json,
    twice numeric GENERATED ALWAYS AS (amount * 2) STORED
);
INSERT INTO stops (code, amount, doc) SELECT 'S' || g, g, '{"n": 1}' FROM generate_series(1, 1000) g;
"#;

const STOPS_TABLES: &str = r#"["public.stops"]"#;

/// What dashboards build on the copy: a view, a grant, a comment.
fn build_on_the_copy(ferry: &Ferry) {
    ferry.target.sql(
        "CREATE VIEW busy_stops AS SELECT id, code FROM stops WHERE amount > 500; \
         GRANT SELECT ON stops TO PUBLIC; COMMENT ON TABLE stops IS 'dashboard source'",
    );
}

/// The table's OID, ACL and comment, and the view's row count.
fn what_hangs_on_stops(ferry: &Ferry) -> String {
    ferry.target.sql(
        "SELECT c.oid || ' ' || c.relacl::text || ' ' || obj_description(c.oid, 'pg_class') \
         FROM pg_class c WHERE c.oid = 'stops'::regclass",
    )
}

#[test]
fn a_reader_is_never_blocked_while_a_complete_replaces_its_table() {
    let ferry = Ferry::new(STOPS, STOPS_TABLES);
    ferry.ship();
    build_on_the_copy(&ferry);
    let before = what_hangs_on_stops(&ferry);
    let old_rows = Ferry::rows(&ferry.target, "stops", "id");
    let old_view = ferry.target.sql("SELECT count(*) FROM busy_stops");
    ferry.source.sql(
        "UPDATE stops SET amount = amount + 1000 WHERE id % 10 = 0; DELETE FROM stops WHERE id > 990; \
         INSERT INTO stops (code, amount) SELECT 'N' || g, g FROM generate_series(1, 10) g",
    );
    ferry.sender(&["complete"]).expect_code(0);

    // Held before its commit, at the last thing it writes: the ledger row.
    let (receiver, lock, load) = start_load_held_at(&ferry, "pgferry.ledger", "SHARE");
    // By then it has written the new rows of stops in its transaction.
    assert_eq!(
        ferry.target.sql(&format!(
            "SELECT count(*) FROM pg_locks WHERE pid = {} AND relation = 'stops'::regclass \
             AND mode = 'RowExclusiveLock' AND granted",
            load.pid
        )),
        "1",
        "the held load has not written stops: {load:?}"
    );

    // A reader that would rather fail than wait a second gets the old rows at once.
    let read = ferry.target.sql_result(
        "SET lock_timeout = '1s'; SELECT COALESCE(json_agg(t ORDER BY id), '[]')::text FROM stops t",
    );
    assert_eq!(
        read.as_deref(),
        Ok(old_rows.as_str()),
        "a reader waited or saw new rows"
    );
    let view = ferry
        .target
        .sql_result("SET lock_timeout = '1s'; SELECT count(*) FROM busy_stops");
    assert_eq!(view.as_deref(), Ok(old_view.as_str()));

    lock.release();
    receiver.finish().expect_code(0);
    // After the commit the same table holds the new rows, and everything on it still works.
    ferry.assert_same("stops", "id");
    assert_eq!(what_hangs_on_stops(&ferry), before);
    assert_eq!(
        ferry.target.sql("SELECT count(*) FROM busy_stops"),
        ferry
            .source
            .sql("SELECT count(*) FROM stops WHERE amount > 500")
    );
}

/// The transaction ids that wrote the rows of `table` now: a row another load rewrites
/// carries a new one (`xmin`), a row it leaves alone keeps its own.
fn writers(ferry: &Ferry, table: &str) -> String {
    ferry.target.sql(&format!(
        "SELECT string_agg(DISTINCT quote_literal(xmin::text), ',') FROM {table}"
    ))
}

/// How many rows of `table` were written by none of `writers`.
fn rows_written_since(ferry: &Ferry, table: &str, writers: &str) -> String {
    ferry.target.sql(&format!(
        "SELECT count(*) FROM {table} WHERE xmin::text NOT IN ({writers})"
    ))
}

#[test]
fn only_the_rows_that_changed_are_written_and_every_byte_of_them_counts() {
    let ferry = Ferry::new(STOPS, STOPS_TABLES);
    ferry.ship();
    ferry.source.sql(
        r#"UPDATE stops SET amount = 1.00 WHERE id = 1;
           UPDATE stops SET doc = '{"n":1}' WHERE id = 2;
           DELETE FROM stops WHERE id = 3;
           INSERT INTO stops (code, amount) VALUES ('S3', 3);"#,
    );
    let first_load = writers(&ferry, "stops");
    ferry.ship();
    // 1.0 and 1.00 are equal numbers and json has no equality, yet both are copied; the
    // new row takes the code its deleted row freed; the generated column follows.
    ferry.assert_same("stops", "id");
    // Two updates and one insert: the other 997 rows were not rewritten.
    assert_eq!(rows_written_since(&ferry, "stops", &first_load), "3");
    assert_eq!(ferry.target.sql("SELECT count(*) FROM stops"), "1000");
}

#[test]
fn a_foreign_key_from_a_table_outside_the_bundle_keeps_its_rows_or_stops_the_load() {
    let ferry = Ferry::new(STOPS, STOPS_TABLES);
    ferry.ship();
    ferry.target.sql(
        "CREATE TABLE notes (stop_id integer NOT NULL REFERENCES stops (id), note text); \
         INSERT INTO notes VALUES (10, 'keep'), (20, 'keep too')",
    );
    ferry
        .source
        .sql("UPDATE stops SET amount = 0 WHERE id IN (10, 20); DELETE FROM stops WHERE id = 20");
    ferry.sender(&["complete"]).expect_code(0);
    let old_rows = Ferry::rows(&ferry.target, "stops", "id");

    // Stop 20 is gone on the primary, but a note on the target needs it: the load stops
    // before anything changes, naming the constraint.
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(run.stderr.contains("notes_stop_id_fkey"), "{}", run.stderr);
    assert_eq!(Ferry::rows(&ferry.target, "stops", "id"), old_rows);
    assert_eq!(ferry.ledger().len(), 1, "{:?}", ferry.ledger());

    // Once the note is gone the same bundle loads, and the other note keeps its stop.
    ferry.target.sql("DELETE FROM notes WHERE stop_id = 20");
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("stops", "id");
    assert_eq!(
        ferry
            .target
            .sql("SELECT string_agg(n.note || ' ' || s.amount, ',') FROM notes n JOIN stops s ON s.id = n.stop_id"),
        "keep 0"
    );
}

const UNKEYED_AND_PARTITIONED: &str = r#"
CREATE TABLE readings (station text, value integer);
INSERT INTO readings VALUES ('a', 1), ('a', 1), ('b', 2);
CREATE TABLE events (id integer, at date, kind text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO events VALUES (1, '2025-06-01', 'moved'), (2, '2025-06-01', 'changed'), (3, '2026-06-01', 'deleted');
"#;

#[test]
fn a_table_without_a_key_and_a_partition_tree_are_replaced_row_for_row() {
    let ferry = Ferry::new(
        UNKEYED_AND_PARTITIONED,
        r#"["public.readings", "public.events"]"#,
    );
    ferry.ship();
    ferry.source.sql(
        "DELETE FROM readings WHERE ctid = (SELECT min(ctid) FROM readings WHERE station = 'a'); \
         INSERT INTO readings VALUES ('c', 3), ('c', 3); \
         UPDATE events SET at = '2026-02-01' WHERE id = 1; UPDATE events SET kind = 'new kind' WHERE id = 2; \
         DELETE FROM events WHERE id = 3; INSERT INTO events VALUES (4, '2026-07-01', 'inserted')",
    );
    ferry.ship();
    ferry.assert_same("readings", "station, value");
    ferry.assert_same("events", "id, at");
    assert_eq!(
        ferry
            .target
            .sql("SELECT tableoid::regclass FROM events WHERE id = 1"),
        "events_2026",
        "the row did not move to its new partition"
    );
}

/// Row 4 takes row 5's code and row 5 takes row 4's.
const SWAP_CODES: &str = "UPDATE stops SET code = 'swapping' WHERE id = 4; \
     UPDATE stops SET code = 'S4' WHERE id = 5; \
     UPDATE stops SET code = 'S5', amount = amount + 1 WHERE id = 4";

#[test]
fn rows_that_trade_unique_values_load_unless_a_foreign_key_acts_on_their_delete() {
    let ferry = Ferry::new(STOPS, STOPS_TABLES);
    ferry.ship();
    ferry.source.sql(SWAP_CODES);
    ferry.ship();
    ferry.assert_same("stops", "id");
    assert_eq!(
        ferry
            .target
            .sql("SELECT string_agg(code, ',' ORDER BY id) FROM stops WHERE id IN (4, 5)"),
        "S5,S4"
    );

    // Rewriting rows 4 and 5 would cascade to the target's own notes: the load stops
    // instead, naming the unique constraint, and nothing changes.
    ferry.target.sql(
        "CREATE TABLE notes (stop_id integer REFERENCES stops (id) ON DELETE CASCADE, note text); \
         INSERT INTO notes VALUES (4, 'kept')",
    );
    ferry
        .source
        .sql("UPDATE stops SET code = 'swapping' WHERE id = 4; UPDATE stops SET code = 'S5' WHERE id = 5; UPDATE stops SET code = 'S4' WHERE id = 4");
    ferry.sender(&["complete"]).expect_code(0);
    let old_rows = Ferry::rows(&ferry.target, "stops", "id");
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(run.stderr.contains("stops_code_key"), "{}", run.stderr);
    assert_eq!(Ferry::rows(&ferry.target, "stops", "id"), old_rows);
    assert_eq!(ferry.target.sql("SELECT note FROM notes"), "kept");
}
