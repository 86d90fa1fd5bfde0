//! Partial bundles end to end: the window, parent rows, files, order across kinds, values.

use std::time::{Duration, SystemTime};

use crate::ferry::*;
use crate::util::*;

/// Shaped like the original app: an event refers to an assignment, which refers to a bus in
/// another schema. Only events are a partial table; the parents come along by foreign key.
const FLEET: &str = r#"
CREATE SCHEMA fleet;
CREATE TABLE fleet."Bus" (id serial PRIMARY KEY, plate text NOT NULL);
CREATE TABLE "AndroidRequests_assignment" (
    id serial PRIMARY KEY,
    bus_id integer NOT NULL REFERENCES fleet."Bus"(id),
    route text NOT NULL
);
CREATE TABLE "AndroidRequests_event" (
    id serial PRIMARY KEY,
    assignment_id integer NOT NULL REFERENCES "AndroidRequests_assignment"(id),
    kind text NOT NULL,
    "timeStamp" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON "AndroidRequests_event" ("timeStamp");
INSERT INTO fleet."Bus" (plate) SELECT 'BUS-' || g FROM generate_series(1, 5) g;
INSERT INTO "AndroidRequests_assignment" (bus_id, route) SELECT g, 'R' || g FROM generate_series(1, 5) g;
INSERT INTO "AndroidRequests_event" (assignment_id, kind, "timeStamp")
    SELECT 1 + g % 5, 'old', now() - interval '1 day' FROM generate_series(1, 20) g;
"#;

const FLEET_TABLES: &str = r#"["public.AndroidRequests_*", "fleet.*"]"#;

const EVENTS: &str = r#"[[partial.tables]]
table = "public.AndroidRequests_event"
changed_at = "timeStamp"
"#;

fn fleet() -> Ferry {
    Ferry::with(FLEET, FLEET_TABLES, EVENTS, "")
}

fn assert_fleet_same(ferry: &Ferry) {
    ferry.assert_same("fleet.\"Bus\"", "id");
    ferry.assert_same("\"AndroidRequests_assignment\"", "id");
    ferry.assert_same("\"AndroidRequests_event\"", "id");
}

/// A new bus, its assignment and an event on it, all made now.
fn new_trip(db: &Db, plate: &str) {
    db.sql(&format!(
        r#"WITH b AS (INSERT INTO fleet."Bus" (plate) VALUES ('{plate}') RETURNING id),
                a AS (INSERT INTO "AndroidRequests_assignment" (bus_id, route) SELECT id, 'route of {plate}' FROM b RETURNING id)
           INSERT INTO "AndroidRequests_event" (assignment_id, kind) SELECT id, 'trip of {plate}' FROM a"#
    ));
}

#[test]
fn rows_changed_in_the_window_arrive_with_their_parents_three_levels_deep() {
    let ferry = Ferry::with(
        FLEET,
        FLEET_TABLES,
        EVENTS,
        "[postprocess]\ncommand = [\"sh\", \"-c\", \"echo $PGFERRY_KIND $PGFERRY_WINDOW_START $PGFERRY_WINDOW_END >> {scratch}/hook.log\"]\n",
    );
    ferry.ship();
    new_trip(&ferry.source, "NEW-1");
    ferry.source.sql(
        r#"UPDATE "AndroidRequests_event" SET kind = 'updated', "timeStamp" = now() WHERE id = 3;
           UPDATE "AndroidRequests_event" SET kind = 'changed without its timestamp' WHERE id = 4;
           INSERT INTO "AndroidRequests_event" (assignment_id, kind, "timeStamp") VALUES (1, 'late', now() - interval '1 hour');
           UPDATE fleet."Bus" SET plate = 'parent not referenced' WHERE id = 5;"#,
    );
    ferry.sender(&["partial"]).expect_code(0);
    let bundle = ferry.pending().pop().unwrap();
    assert!(bundle.ends_with("-partial.tar.gz"), "{bundle}");
    ferry.receiver(&["load"]).expect_code(0);

    let target = &ferry.target;
    assert_eq!(
        target.sql(r#"SELECT b.plate || ' ' || a.route || ' ' || e.kind FROM "AndroidRequests_event" e JOIN "AndroidRequests_assignment" a ON a.id = e.assignment_id JOIN fleet."Bus" b ON b.id = a.bus_id WHERE b.plate = 'NEW-1'"#),
        "NEW-1 route of NEW-1 trip of NEW-1",
        "the new event and its parents two and three levels up arrived"
    );
    assert_eq!(
        target.sql(r#"SELECT kind FROM "AndroidRequests_event" WHERE id = 3"#),
        "updated"
    );
    assert_eq!(
        target.sql(r#"SELECT kind FROM "AndroidRequests_event" WHERE id = 4"#),
        "old",
        "a row whose changed_at is outside the window was sent"
    );
    assert_eq!(
        target.sql(r#"SELECT count(*) FROM "AndroidRequests_event" WHERE kind = 'late'"#),
        "0"
    );
    assert_eq!(
        target.sql(r#"SELECT plate FROM fleet."Bus" WHERE id = 5"#),
        "BUS-5",
        "a parent no sent row references was sent"
    );

    let manifest = ferry.manifest(&bundle);
    let tables: Vec<(String, bool, u64)> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                format!(
                    "{}.{}",
                    t["table"]["schema"].as_str().unwrap(),
                    t["table"]["name"].as_str().unwrap()
                ),
                t["parent"].as_bool().unwrap(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tables,
        vec![
            ("fleet.Bus".to_string(), true, 2),
            ("public.AndroidRequests_assignment".to_string(), true, 2),
            ("public.AndroidRequests_event".to_string(), false, 2),
        ],
        "parents first, marked as parents, with their row counts"
    );
    let window = &manifest["window"];
    let hook = std::fs::read_to_string(ferry.scratch.path("hook.log")).unwrap();
    let last = hook.lines().last().unwrap();
    let fields: Vec<&str> = last.split(' ').collect();
    assert_eq!(fields[0], "partial", "{hook}");
    let parse = |s: &str| chrono_like(s);
    assert_eq!(parse(fields[1]), parse(window["start"].as_str().unwrap()));
    assert_eq!(parse(fields[2]), parse(window["end"].as_str().unwrap()));
    assert_eq!(ferry.ledger().len(), 2);
}

/// Normalizes an RFC 3339 time through PostgreSQL, so `Z` and `+00:00` compare equal.
fn chrono_like(text: &str) -> String {
    let db = Db {
        name: "postgres".into(),
        port: Env::get().port("PRIMARY_PORT"),
    };
    db.sql(&format!(
        "SELECT extract(epoch FROM '{text}'::timestamptz)::text"
    ))
}

#[test]
fn no_gap_when_an_upload_fails_the_next_partial_sends_both_periods() {
    let ferry = fleet();
    // No overlap, so only the high-water mark decides what the next window covers.
    let text = std::fs::read_to_string(&ferry.sender_config).unwrap();
    std::fs::write(
        &ferry.sender_config,
        text.replace("overlap = \"2m\"", "overlap = \"0s\""),
    )
    .unwrap();
    ferry.ship();
    ferry.ship_partial(&[]);
    new_trip(&ferry.source, "DURING-FAILURE");
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_event" SET kind = 'changed during failure', "timeStamp" = now() WHERE id = 1"#);
    let mark = ferry.watermark();
    let failed = run_config("sender", &ferry.unreachable_sender_config(), &["partial"]);
    failed.expect_code(1);
    assert!(
        failed.stderr.contains("127.0.0.1"),
        "the error names the host: {}",
        failed.stderr
    );
    assert_eq!(
        ferry.watermark(),
        mark,
        "a failed upload moved the high-water mark"
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
    new_trip(&ferry.source, "AFTER-FAILURE");
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_event" SET kind = 'changed after failure', "timeStamp" = now() WHERE id = 2"#);
    ferry.ship_partial(&[]);
    assert_fleet_same(&ferry);
    assert_eq!(
        ferry.target.sql(
            r#"SELECT count(*) FROM fleet."Bus" WHERE plate IN ('DURING-FAILURE', 'AFTER-FAILURE')"#
        ),
        "2"
    );
}

#[test]
fn a_fixed_window_loses_a_longer_gap_as_documented_and_the_next_default_partial_recovers_it() {
    let ferry = fleet();
    ferry.ship();
    // The last bundle was made ten minutes ago; rows changed five minutes ago since.
    let ten_minutes_ago = ferry
        .source
        .sql("SELECT to_json(now() - interval '10 minutes') #>> '{}'");
    ferry.set_watermark(&ten_minutes_ago);
    ferry.source.sql(
        r#"UPDATE "AndroidRequests_event" SET kind = 'changed in the gap', "timeStamp" = now() - interval '5 minutes' WHERE id <= 3"#,
    );
    ferry.ship_partial(&["--minutes", "1"]);
    assert_eq!(
        ferry.target.sql(
            r#"SELECT count(*) FROM "AndroidRequests_event" WHERE kind = 'changed in the gap'"#
        ),
        "0",
        "a one-minute window sent rows changed five minutes ago"
    );
    assert_eq!(
        chrono_like(&ferry.watermark()),
        chrono_like(&ten_minutes_ago),
        "a fixed window that left a gap moved the high-water mark"
    );
    ferry.ship_partial(&[]);
    assert_fleet_same(&ferry);
}

#[test]
fn bundles_of_both_kinds_in_one_inbox_start_at_the_newest_complete() {
    let ferry = fleet();
    ferry.sender(&["complete"]).expect_code(0);
    new_trip(&ferry.source, "P1");
    ferry.sender(&["partial"]).expect_code(0);
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_event" SET kind = 'p2', "timeStamp" = now() WHERE id = 1"#);
    ferry.sender(&["partial"]).expect_code(0);
    ferry.source.sql(
        r#"DELETE FROM "AndroidRequests_event" WHERE id > 15;
           UPDATE "AndroidRequests_event" SET kind = 'c2' WHERE id = 1;"#,
    );
    ferry.sender(&["complete"]).expect_code(0);
    new_trip(&ferry.source, "P3");
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_event" SET kind = 'p3', "timeStamp" = now() WHERE id = 2"#);
    ferry.sender(&["partial"]).expect_code(0);
    assert_eq!(ferry.pending().len(), 5);

    ferry.receiver(&["load"]).expect_code(0);
    assert_fleet_same(&ferry);
    let kinds: Vec<String> = ferry
        .ledger()
        .iter()
        .map(|l| l.split(' ').skip(1).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "complete superseded",
            "partial superseded",
            "partial superseded",
            "complete applied",
            "partial applied"
        ]
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
}

#[test]
fn a_partial_older_than_the_applied_complete_is_skipped_not_loaded() {
    let ferry = fleet();
    ferry.ship();
    ferry.source.sql(
        r#"UPDATE "AndroidRequests_event" SET kind = 'stale', "timeStamp" = now() WHERE id = 1"#,
    );
    ferry.sender(&["partial"]).expect_code(0);
    let late = ferry.pending().pop().unwrap();
    let aside = ferry.scratch.path(&late);
    std::fs::rename(ferry.scratch.inbox.join(&late), &aside).unwrap();
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_event" SET kind = 'fresh' WHERE id = 1"#);
    ferry.ship();
    // The partial arrives late, after the newer complete was applied.
    std::fs::rename(&aside, ferry.scratch.inbox.join(&late)).unwrap();
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(
        ferry
            .target
            .sql(r#"SELECT kind FROM "AndroidRequests_event" WHERE id = 1"#),
        "fresh",
        "an obsolete partial overwrote newer rows"
    );
    assert!(
        ferry.ledger().contains(&format!("{late} partial skipped")),
        "{:?}",
        ferry.ledger()
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
    assert_eq!(ferry.inbox_sub("applied").len(), 3);
}

#[test]
fn an_empty_partial_is_still_sent_and_recorded() {
    let ferry = fleet();
    ferry.ship();
    ferry.sender(&["partial"]).expect_code(0);
    let bundle = ferry.pending().pop().unwrap();
    let manifest = ferry.manifest(&bundle);
    let rows: u64 = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 0);
    ferry.receiver(&["load"]).expect_code(0);
    assert!(ferry
        .ledger()
        .contains(&format!("{bundle} partial applied")));
    assert_fleet_same(&ferry);
}

/// Every awkward value, in a table whose `changed_at` is a timestamptz, and a table whose
/// `changed_at` is a timestamp without time zone.
const VALUES: &str = r#"
CREATE TABLE "Awkward_Values" (
    id integer PRIMARY KEY,
    "Label" text,
    note varchar(200),
    raw bytea,
    doc jsonb,
    tags text[],
    amount numeric(20,6),
    "changedAt" timestamptz NOT NULL
);
CREATE TABLE plain_times (id integer PRIMARY KEY, v text, changed timestamp NOT NULL);
"#;

#[test]
fn values_round_trip_through_csv_and_the_window_start_is_exclusive() {
    let ferry = Ferry::with(
        VALUES,
        r#"["public.Awkward_Values", "public.plain_times"]"#,
        "[[partial.tables]]\ntable = \"Awkward_Values\"\nchanged_at = \"changedAt\"\n[[partial.tables]]\ntable = \"plain_times\"\nchanged_at = \"changed\"\n",
        "",
    );
    ferry.ship();
    let start = format!(
        "('{}'::timestamptz - interval '2 minutes')",
        ferry.watermark()
    );
    ferry.source.sql(&format!(
        r#"INSERT INTO "Awkward_Values" VALUES
 (1, NULL, '', NULL, NULL, NULL, NULL, now()),
 (2, 'ünïcødé ✓ 漢字', 'tab	here, and a comma', '\x00ff10'::bytea, '{{"a": [1, "two", null], "b": {{"c": "d,e"}}}}', ARRAY['x', 'y z', NULL, 'q"uote', ''], 12345.678901, now()),
 (3, 'quote '' and "double" and \ backslash', E'line1\nline2\r\nline3', ''::bytea, '[]', '{{}}', -0.000001, now()),
 (4, E'\\.', E'\\.\n\\.', '\x5c2e'::bytea, '"\\."', ARRAY[E'\\.'], 0, now()),
 (5, '"', E'"\n"', '\x22'::bytea, '{{"k": "\""}}', ARRAY[E'a\nb'], 1e-6, now()),
 (6, 'just after the window start', '', NULL, NULL, NULL, NULL, {start} + interval '1 microsecond'),
 (7, 'exactly at the window start', '', NULL, NULL, NULL, NULL, {start});
INSERT INTO plain_times VALUES
 (1, 'now', now()::timestamp),
 (2, 'just after the window start', ({start} + interval '1 microsecond')::timestamp),
 (3, 'exactly at the window start', {start}::timestamp);"#
    ));
    ferry.ship_partial(&[]);
    ferry
        .source
        .sql(r#"DELETE FROM "Awkward_Values" WHERE id = 7; DELETE FROM plain_times WHERE id = 3"#);
    ferry.assert_same("\"Awkward_Values\"", "id");
    ferry.assert_same("plain_times", "id");
    // NULL and the empty string stay apart.
    assert_eq!(
        ferry
            .target
            .sql(r#"SELECT ("Label" IS NULL)::text || ' ' || (note = '')::text FROM "Awkward_Values" WHERE id = 1"#),
        "true true"
    );
}

#[test]
fn referenced_files_and_files_modified_in_the_window_arrive_and_missing_ones_are_listed() {
    let ferry = Ferry::with(
        r#"CREATE TABLE "AndroidRequests_report" (id serial PRIMARY KEY, "timeStamp" timestamptz NOT NULL DEFAULT now(), "imageName" text);
           INSERT INTO "AndroidRequests_report" ("timeStamp", "imageName") VALUES (now() - interval '1 day', 'before.jpeg');"#,
        r#"["public.AndroidRequests_report"]"#,
        "[[partial.tables]]\ntable = \"public.AndroidRequests_report\"\nchanged_at = \"timeStamp\"\n\n[[files]]\nname = \"images\"\ndir = \"{scratch}/src-images\"\ninclude = [\"*.jpeg\"]\npartial = true\nreferenced_by = [\"public.AndroidRequests_report.imageName\"]\n",
        "[[files]]\nname = \"images\"\ndir = \"{scratch}/dst-images\"\n",
    );
    let src = ferry.scratch.path("src-images");
    std::fs::create_dir_all(&src).unwrap();
    ferry.ship();
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    for (name, old) in [
        ("old-referenced.jpeg", true),
        ("old-unreferenced.jpeg", true),
        ("fresh.jpeg", false),
    ] {
        let path = src.join(name);
        std::fs::write(&path, name.as_bytes()).unwrap();
        if old {
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(day_ago)
                .unwrap();
        }
    }
    ferry.source.sql(
        r#"INSERT INTO "AndroidRequests_report" ("imageName") VALUES ('old-referenced.jpeg'), ('gone.jpeg'), (NULL), ('')"#,
    );
    ferry.sender(&["partial"]).expect_code(0);
    let bundle = ferry.pending().pop().unwrap();
    ferry.receiver(&["load"]).expect_code(0);
    let dst = ferry.scratch.path("dst-images");
    assert_eq!(list_dir(&dst), vec!["fresh.jpeg", "old-referenced.jpeg"]);
    assert_eq!(
        std::fs::read(dst.join("old-referenced.jpeg")).unwrap(),
        b"old-referenced.jpeg"
    );
    let manifest = ferry.manifest(&bundle);
    assert_eq!(manifest["file_sets"][0]["name"], "images");
    assert_eq!(manifest["file_sets"][0]["files"], 2);
    assert_eq!(
        manifest["file_sets"][0]["missing"],
        serde_json::json!(["gone.jpeg"])
    );
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}

#[test]
fn self_references_and_cycles_terminate_and_bring_every_ancestor() {
    let ferry = Ferry::with(
        r#"CREATE TABLE node (id integer PRIMARY KEY, parent_id integer REFERENCES node(id), other_id integer, changed timestamptz NOT NULL);
           CREATE TABLE other (id integer PRIMARY KEY, node_id integer REFERENCES node(id) DEFERRABLE INITIALLY DEFERRED);
           ALTER TABLE node ADD FOREIGN KEY (other_id) REFERENCES other(id) DEFERRABLE INITIALLY IMMEDIATE;
           INSERT INTO node VALUES (1, NULL, NULL, now() - interval '1 day');"#,
        r#"["public.node", "public.other"]"#,
        "[[partial.tables]]\ntable = \"node\"\nchanged_at = \"changed\"\n",
        "",
    );
    ferry.ship();
    ferry.source.sql(
        r#"INSERT INTO node VALUES (10, NULL, NULL, now() - interval '1 day'), (11, 10, NULL, now() - interval '1 day'), (12, 11, NULL, now() - interval '1 day');
           INSERT INTO other VALUES (20, 10);
           UPDATE node SET other_id = 20 WHERE id = 10;
           INSERT INTO node VALUES (13, 12, NULL, now());"#,
    );
    ferry.ship_partial(&[]);
    ferry.assert_same("node", "id");
    ferry.assert_same("other", "id");
}

#[test]
fn a_table_without_a_key_is_refused_by_partial_and_by_check() {
    let ferry = Ferry::with(
        r#"CREATE TABLE "NoKey" (id integer, "timeStamp" timestamptz NOT NULL);
           CREATE INDEX ON "NoKey" ("timeStamp");"#,
        r#"["public.NoKey"]"#,
        "[[partial.tables]]\ntable = \"NoKey\"\nchanged_at = \"timeStamp\"\n",
        "",
    );
    let run = ferry.sender(&["partial"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("table public.NoKey has no primary key or unique not-null key, so its rows cannot be upserted on the receiver; hint: add a primary key"),
        "{}",
        run.stderr
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
    let check = ferry.sender(&["check"]);
    check.expect_code(1);
    assert_eq!(
        check.line("FAIL partial table public.NoKey"),
        "FAIL partial table public.NoKey: table public.NoKey has no primary key or unique not-null key, so its rows cannot be upserted"
    );
}

#[test]
fn a_partial_table_missing_from_complete_bundles_is_a_config_error() {
    let ferry = Ferry::with(FLEET, r#"["public.AndroidRequests_*"]"#, EVENTS, "");
    let run = ferry.sender(&["partial"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("key source.tables: partial bundles send table(s) fleet.Bus (referenced by sent rows) but complete bundles do not, so the receiver would never create them; hint: add them to source.tables"),
        "{}",
        run.stderr
    );
}

/// Sum of a `pg_stat_user_tables` counter for `table`, once every other session of the
/// database has ended (a backend flushes its counters before it leaves pg_stat_activity).
fn table_counter(db: &Db, table: &str, counter: &str) -> i64 {
    wait_for(
        || {
            db.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()") == "0"
        },
        "the sender's sessions to end",
    );
    db.sql(&format!(
        "SELECT {counter} FROM pg_stat_user_tables WHERE relid = '{table}'::regclass"
    ))
    .parse()
    .unwrap()
}

#[test]
fn the_cost_follows_the_changes_not_the_table() {
    let ferry = Ferry::with(
        r#"CREATE TABLE big (id serial PRIMARY KEY, payload text NOT NULL, changed timestamptz NOT NULL);
           CREATE INDEX ON big (changed);
           INSERT INTO big (payload, changed) SELECT repeat('x', 50) || g, now() - interval '1 day' - g * interval '1 second' FROM generate_series(1, 100000) g;
           ANALYZE big;"#,
        r#"["public.big"]"#,
        "[[partial.tables]]\ntable = \"big\"\nchanged_at = \"changed\"\n",
        "",
    );
    ferry.ship();
    ferry
        .source
        .sql("UPDATE big SET payload = 'changed', changed = now() WHERE id % 100 = 0");
    let seq_before = table_counter(&ferry.source, "big", "seq_tup_read");
    let idx_before = table_counter(&ferry.source, "big", "idx_scan");
    ferry.sender(&["partial"]).expect_code(0);
    let seq_read = table_counter(&ferry.source, "big", "seq_tup_read") - seq_before;
    let idx_scans = table_counter(&ferry.source, "big", "idx_scan") - idx_before;
    assert!(
        seq_read < 1000,
        "the partial read {seq_read} rows sequentially for 1000 changed rows"
    );
    assert!(idx_scans >= 1, "the partial used no index");
    let bundle = ferry.pending().pop().unwrap();
    assert_eq!(ferry.manifest(&bundle)["tables"][0]["rows"], 1000);
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("big", "id");
}
