//! Complete bundles end to end: dump, stream, upload, verify, load, install, prune.

use std::os::unix::fs::PermissionsExt;

use crate::ferry::*;
use crate::util::*;

/// A table that exercises every awkward value: NULLs, empty strings, unicode, quotes, tabs
/// and newlines, bytea, jsonb, arrays, numeric, timestamptz, capitals in names.
const AWKWARD: &str = r#"
CREATE TABLE "Awkward_Values" (
    id integer PRIMARY KEY,
    "Label" text,
    note varchar(200),
    raw bytea,
    doc jsonb,
    tags text[],
    amount numeric(20,6),
    "seenAt" timestamptz
);
INSERT INTO "Awkward_Values" VALUES
 (1, NULL, '', NULL, NULL, NULL, NULL, NULL),
 (2, 'ünïcødé ✓ 漢字', 'tab	here', '\x00ff10'::bytea, '{"a": [1, "two", null], "b": {"c": "d"}}', ARRAY['x', 'y z', NULL], 12345.678901, '2026-11-22 09:45:00.123456+00'),
 (3, 'quote '' and "double" and \ backslash', E'line1\nline2\r\nline3', ''::bytea, '[]', '{}', -0.000001, '1999-12-31 23:59:59+05'),
 (4, E'\\.', E'\\.\n\\.', '\x5c2e'::bytea, '"\\."', ARRAY[E'\\.'], 0, 'infinity');
CREATE TABLE "AndroidRequests_bus" (id serial PRIMARY KEY, plate text NOT NULL UNIQUE);
CREATE TABLE "AndroidRequests_report" (
    id serial PRIMARY KEY,
    bus_id integer REFERENCES "AndroidRequests_bus"(id),
    "timeStamp" timestamptz NOT NULL DEFAULT now(),
    "imageName" text
);
CREATE INDEX ON "AndroidRequests_report" ("timeStamp");
INSERT INTO "AndroidRequests_bus" (plate) SELECT 'BUS-' || g FROM generate_series(1, 50) g;
INSERT INTO "AndroidRequests_report" (bus_id, "imageName") SELECT 1 + g % 50, 'img' || g || '.jpeg' FROM generate_series(1, 500) g;
"#;

const TABLES: &str = r#"["public.Awkward_Values", "public.AndroidRequests_*"]"#;

fn images_extra() -> &'static str {
    "[[files]]\nname = \"images\"\ndir = \"{scratch}/src-images\"\ninclude = [\"*.jpeg\"]\n"
}

fn receiver_images() -> &'static str {
    "[[files]]\nname = \"images\"\ndir = \"{scratch}/dst-images\"\n"
}

fn write_images(ferry: &Ferry) -> Vec<(String, Vec<u8>)> {
    let mut written = Vec::new();
    for (name, bytes) in [
        ("img1.jpeg", vec![0xff, 0xd8, 0xff, 0x00, 0x10]),
        (
            "sub/dir/img2.jpeg",
            (0..=255u8).cycle().take(100_000).collect(),
        ),
        ("empty.jpeg", vec![]),
    ] {
        let path = ferry.scratch.path("src-images").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        written.push((name.to_string(), bytes));
    }
    std::fs::write(ferry.scratch.path("src-images/notes.txt"), "not included").unwrap();
    written
}

#[test]
fn round_trip_copies_every_value_and_file_exactly() {
    let ferry = Ferry::with(AWKWARD, TABLES, images_extra(), receiver_images());
    let images = write_images(&ferry);
    ferry.ship();
    ferry.assert_same("\"Awkward_Values\"", "id");
    ferry.assert_same("\"AndroidRequests_bus\"", "id");
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    for (name, bytes) in images {
        let copied = std::fs::read(ferry.scratch.path("dst-images").join(&name)).unwrap();
        assert_eq!(copied, bytes, "file {name} differs");
    }
    assert!(
        !ferry.scratch.path("dst-images/notes.txt").exists(),
        "a file outside `include` was sent"
    );
    // The created tables carry their keys, so the next partial can upsert.
    assert_eq!(
        ferry.target.sql("SELECT count(*) FROM pg_constraint WHERE conrelid = '\"AndroidRequests_report\"'::regclass AND contype IN ('p', 'f')"),
        "2"
    );
    let ledger = ferry.ledger();
    assert_eq!(ledger.len(), 1);
    assert!(ledger[0].ends_with(" complete applied"), "{ledger:?}");
    assert_eq!(ferry.pending(), Vec::<String>::new());
    assert_eq!(ferry.inbox_sub("applied").len(), 1);
}

#[test]
fn a_second_complete_follows_inserts_updates_and_deletes() {
    let ferry = Ferry::new(AWKWARD, TABLES);
    ferry.ship();
    ferry.source.sql(
        r#"INSERT INTO "Awkward_Values" (id, "Label") VALUES (10, 'new');
           UPDATE "Awkward_Values" SET note = 'changed' WHERE id = 2;
           DELETE FROM "Awkward_Values" WHERE id = 3;
           DELETE FROM "AndroidRequests_report" WHERE id > 100;"#,
    );
    ferry.ship();
    ferry.assert_same("\"Awkward_Values\"", "id");
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(
        ferry
            .target
            .sql("SELECT count(*) FROM \"AndroidRequests_report\""),
        "100"
    );
    assert_eq!(ferry.ledger().len(), 2);
}

#[test]
fn a_target_with_a_different_column_fails_naming_it_and_stays_unchanged() {
    let ferry = Ferry::new(AWKWARD, r#"["public.AndroidRequests_bus"]"#);
    ferry.target.sql(r#"CREATE TABLE "AndroidRequests_bus" (id integer PRIMARY KEY, plate_no text); INSERT INTO "AndroidRequests_bus" VALUES (7, 'OLD');"#);
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(
            "table public.AndroidRequests_bus on the target differs from the bundle: column \"plate\" (text) is missing on the target; column \"plate_no\" (text) exists only on the target"
        ),
        "{}",
        run.stderr
    );
    assert_eq!(
        ferry
            .target
            .sql("SELECT id || ' ' || plate_no FROM \"AndroidRequests_bus\""),
        "7 OLD"
    );
    assert_eq!(ferry.ledger(), Vec::<String>::new());
    assert_eq!(ferry.pending().len(), 1, "the bundle stays pending");
}

#[test]
fn recreate_replaces_a_table_whose_columns_differ() {
    let ferry = Ferry::with(
        AWKWARD,
        r#"["public.AndroidRequests_bus"]"#,
        "",
        "[complete]\non_schema_change = \"recreate\"\n",
    );
    ferry
        .target
        .sql(r#"CREATE TABLE "AndroidRequests_bus" (id integer PRIMARY KEY, plate_no text)"#);
    ferry.ship();
    ferry.assert_same("\"AndroidRequests_bus\"", "id");
}

#[test]
fn loading_again_is_a_no_op() {
    let ferry = Ferry::new(AWKWARD, TABLES);
    ferry.ship();
    let applied = ferry.inbox_sub("applied");
    // Put the applied bundle back, as if the inbox bookkeeping had been lost.
    std::fs::rename(
        ferry.scratch.inbox.join("applied").join(&applied[0]),
        ferry.scratch.inbox.join(&applied[0]),
    )
    .unwrap();
    ferry
        .target
        .sql("INSERT INTO \"AndroidRequests_bus\" (id, plate) VALUES (1000, 'LOCAL')");
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(ferry.ledger().len(), 1);
    assert_eq!(
        ferry
            .target
            .sql("SELECT count(*) FROM \"AndroidRequests_bus\" WHERE id = 1000"),
        "1",
        "the data was loaded twice"
    );
    ferry.receiver(&["load"]).expect_code(0);
}

#[test]
fn a_pattern_that_matches_no_table_is_a_config_error() {
    let ferry = Ferry::new(
        AWKWARD,
        r#"["public.AndroidRequests_*", "public.Nothing_*"]"#,
    );
    let run = ferry.sender(&["complete"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {}, key source.tables[1]: \"public.Nothing_*\" matches no table in the source database; hint: names are case-sensitive, as the catalog spells them",
            ferry.sender_config.display()
        )),
        "{}",
        run.stderr
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
}

#[test]
fn verify_prints_the_manifest_and_changes_nothing() {
    let ferry = Ferry::new(AWKWARD, TABLES);
    ferry.sender(&["complete"]).expect_code(0);
    let bundle = ferry.scratch.inbox.join(&ferry.pending()[0]);
    let run = run("receiver", &["verify", bundle.to_str().unwrap()]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("kind:          complete"),
        "{}",
        run.stdout
    );
    assert!(
        run.line("  public.AndroidRequests_report")
            .ends_with("500 rows"),
        "{}",
        run.stdout
    );
    assert!(run.line("  public.Awkward_Values").ends_with("4 rows"));
    assert!(run.stdout.ends_with("result:        ok\n"));
    assert_eq!(ferry.pending().len(), 1);
    assert_eq!(ferry.ledger(), Vec::<String>::new());
}

#[test]
fn status_shows_the_last_applied_bundle() {
    let ferry = Ferry::new(AWKWARD, TABLES);
    let before = ferry.receiver(&["status"]);
    before.expect_code(0);
    assert_eq!(before.line("last complete"), "last complete  none");
    ferry.ship();
    let run = ferry.receiver(&["status", "--json"]);
    run.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["last_complete"]["kind"], "complete");
    assert_eq!(status["pending"].as_array().unwrap().len(), 0);
    assert!(status["lag_seconds"].as_i64().unwrap() >= 0);
}

#[test]
fn an_unreadable_hook_failure_keeps_the_bundle_pending_and_the_retry_loads_once() {
    let ferry = Ferry::with(AWKWARD, TABLES, "", "[postprocess]\ncommand = [\"sh\", \"-c\", \"test -e {scratch}/hook-ok && echo $PGFERRY_KIND > {scratch}/hook-ran\"]\n");
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("postprocess command \"sh\" failed (exit status: 1)"),
        "{}",
        run.stderr
    );
    assert_eq!(ferry.pending().len(), 1);
    assert_eq!(
        ferry.ledger().len(),
        1,
        "the data was committed before the hook ran"
    );
    std::fs::write(ferry.scratch.path("hook-ok"), "").unwrap();
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(ferry.scratch.path("hook-ran")).unwrap(),
        "complete\n"
    );
    assert_eq!(ferry.ledger().len(), 1);
    assert_eq!(ferry.pending().len(), 0);
}

#[test]
fn two_concurrent_loads_one_exits_75() {
    let ferry = Ferry::with(
        AWKWARD,
        TABLES,
        "",
        &format!(
            "[postprocess]\ncommand = [\"sh\", \"-c\", \"touch {{scratch}}/started; {}\"]\n",
            wait_for_gate("{scratch}/gate")
        ),
    );
    ferry.sender(&["complete"]).expect_code(0);
    let mut first = std::process::Command::new(bin("receiver"))
        .args(["-c", ferry.receiver_config.to_str().unwrap(), "load"])
        .spawn()
        .unwrap();
    let started = ferry.scratch.path("started");
    // The first load stays in its hook, holding the job, until the test opens the gate.
    wait_for(|| started.exists(), "the first load to reach its hook");
    let second = ferry.receiver(&["load"]);
    std::fs::write(ferry.scratch.path("gate"), "").unwrap();
    let first = first.wait().unwrap();
    second.expect_code(75);
    assert!(
        second.stderr.contains("job load is already running"),
        "{}",
        second.stderr
    );
    assert!(first.success());
}

#[test]
fn prune_deletes_old_applied_bundles_only() {
    let ferry = Ferry::with(AWKWARD, TABLES, "", "");
    ferry.ship();
    // An old applied bundle and an old pending one.
    let old_applied = ferry
        .scratch
        .inbox
        .join("applied/pgferry-20200101T000000.000000Z-complete.tar.gz");
    let old_pending = ferry
        .scratch
        .inbox
        .join("pgferry-20200101T000000.000001Z-partial.tar.gz");
    std::fs::write(&old_applied, "x").unwrap();
    std::fs::write(&old_pending, "x").unwrap();
    std::fs::set_permissions(&old_pending, std::fs::Permissions::from_mode(0o644)).unwrap();
    ferry.receiver(&["prune"]).expect_code(0);
    assert!(!old_applied.exists());
    assert!(old_pending.exists(), "prune deleted a pending bundle");
    assert_eq!(
        ferry.inbox_sub("applied").len(),
        1,
        "the recent applied bundle was deleted"
    );
}
