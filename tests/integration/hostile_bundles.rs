//! Issue 6: hand-crafted malicious bundles. Anyone who can write to the inbox can make a
//! bundle whose manifest matches its entries (the checksums are self-declared), so each
//! case here passes verification and reaches the loader. None may run SQL outside the
//! load's transaction, run a psql meta-command, or write outside the configured dirs.
//!
//! A bundle the loader refuses stays pending (only verification failures go to `failed/`):
//! the job fails and alerts, and the operator removes the bundle; nothing was changed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::ferry::*;
use crate::util::*;

const SOURCE: &str = r#"
CREATE TABLE "Report" (id serial PRIMARY KEY, "Message" text);
INSERT INTO "Report" ("Message") VALUES ('one'), ('two');
"#;

const TABLES: &str = r#"["public.Report"]"#;

/// Bundle entries in archive order, and the manifest.
struct Bundle {
    entries: Vec<(String, Vec<u8>)>,
    manifest: serde_json::Value,
}

impl Bundle {
    fn read(path: &Path) -> Bundle {
        let file = std::fs::File::open(path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut entries = Vec::new();
        let mut manifest = None;
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_str().unwrap().to_string();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            if name == "MANIFEST.json" {
                manifest = Some(serde_json::from_slice(&bytes).unwrap());
            } else {
                entries.push((name, bytes));
            }
        }
        Bundle {
            entries,
            manifest: manifest.unwrap(),
        }
    }

    /// The text of entry `name`.
    fn text(&self, name: &str) -> String {
        let (_, bytes) = self.entries.iter().find(|(n, _)| n == name).unwrap();
        String::from_utf8(bytes.clone()).unwrap()
    }

    fn set_text(&mut self, name: &str, text: &str) {
        let entry = self.entries.iter_mut().find(|(n, _)| n == name).unwrap();
        entry.1 = text.as_bytes().to_vec();
    }

    /// Writes it back with a manifest whose entries (sizes, SHA-256) match, so it passes
    /// verification.
    fn write(mut self, path: &Path) {
        let listed: Vec<serde_json::Value> = self
            .entries
            .iter()
            .map(|(name, bytes)| {
                serde_json::json!({
                    "path": name,
                    "size": bytes.len(),
                    "sha256": hex::encode(sha2::Sha256::digest(bytes)),
                })
            })
            .collect();
        self.manifest["entries"] = serde_json::Value::Array(listed);
        let manifest = serde_json::to_vec_pretty(&self.manifest).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in self
            .entries
            .iter()
            .chain([&("MANIFEST.json".to_string(), manifest)])
        {
            // Raw names: `tar` would refuse to write `..`, the reader must refuse to read it.
            let mut header = tar::Header::new_old();
            header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append(&header, bytes.as_slice()).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        std::fs::write(path, gz.finish().unwrap()).unwrap();
    }
}

/// A primary with `"Report"`, a secondary that has never loaded it and holds a canary
/// table and sequence, and one complete bundle pending.
struct Attack {
    ferry: Ferry,
    bundle: PathBuf,
    name: String,
    /// Where a meta-command would write; outside every configured directory.
    pwned: PathBuf,
}

impl Attack {
    fn new(receiver_extra: &str) -> Attack {
        let ferry = Ferry::with(SOURCE, TABLES, "", receiver_extra);
        ferry.target.sql(
            "CREATE TABLE canary (id int); INSERT INTO canary VALUES (1), (2), (3); CREATE SEQUENCE canary_seq",
        );
        ferry.sender(&["complete"]).expect_code(0);
        let name = ferry.pending()[0].clone();
        let bundle = ferry.scratch.inbox.join(&name);
        let pwned = ferry.scratch.path("pwned");
        Attack {
            ferry,
            bundle,
            name,
            pwned,
        }
    }

    fn craft(&self, edit: impl FnOnce(&mut Bundle)) {
        let mut bundle = Bundle::read(&self.bundle);
        edit(&mut bundle);
        bundle.write(&self.bundle);
    }

    /// `receiver load` fails with `error` (after `load bundle NAME: `), and nothing changed.
    fn refused(&self, error: &str) -> Run {
        let run = self.ferry.receiver(&["load"]);
        run.expect_code(1);
        let expected = format!("error: load bundle {}: {error}", self.name);
        assert!(
            run.stderr.contains(&expected),
            "expected {expected:?} in\n{}",
            run.stderr
        );
        self.assert_unchanged();
        // Refused by the loader, not by verification: it stays pending.
        assert_eq!(self.ferry.pending(), vec![self.name.clone()]);
        assert_eq!(self.ferry.inbox_sub("failed"), Vec::<String>::new());
        run
    }

    fn assert_unchanged(&self) {
        let target = &self.ferry.target;
        assert_eq!(
            target.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM canary"),
            "1,2,3"
        );
        assert_eq!(
            target.sql("SELECT last_value || ' ' || is_called FROM canary_seq"),
            "1 false"
        );
        assert_eq!(target.sql("SELECT to_regclass('\"Report\"') IS NULL"), "t");
        assert_eq!(self.ferry.ledger(), Vec::<String>::new());
        assert!(!self.pwned.exists(), "{} was written", self.pwned.display());
    }

    /// The manifest's schema entry of the first table (`"schema_pre"` or `"schema_post"`).
    fn schema_entry(&self, which: &str) -> String {
        self.ferry.manifest(&self.name)["tables"][0][which]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// `text` with `lines` put right after the end of the first COPY block, and their line
/// number.
fn after_first_copy(text: &str, lines: &str) -> (String, usize) {
    let at = text.find("\n\\.\n").unwrap() + 4;
    let line = text[..at].lines().count() + 1;
    (format!("{}{lines}{}", &text[..at], &text[at..]), line)
}

const DATA: &str = "data/000000.sql";

#[test]
fn a_data_entry_that_commits_and_drops_a_table_is_refused_before_it_reaches_psql() {
    let attack = Attack::new("");
    let mut line = 0;
    attack.craft(|b| {
        let (text, at) = after_first_copy(&b.text(DATA), "COMMIT;\nDROP TABLE canary;\n");
        line = at;
        b.set_text(DATA, &text);
    });
    attack.refused(&format!(
        "load {DATA}: line {line}: refused, not a line pg_dump writes outside COPY data: \"COMMIT;\""
    ));
}

#[test]
fn a_data_entry_with_a_shell_escape_or_an_output_redirect_is_refused() {
    for meta in [
        "\\! touch {pwned}",
        "\\o {pwned}",
        "\\copy canary to '{pwned}'",
    ] {
        let attack = Attack::new("");
        let meta = meta.replace("{pwned}", attack.pwned.to_str().unwrap());
        let mut line = 0;
        attack.craft(|b| {
            let (text, at) = after_first_copy(&b.text(DATA), &format!("{meta}\nSELECT 1;\n"));
            line = at;
            b.set_text(DATA, &text);
        });
        attack.refused(&format!(
            "load {DATA}: line {line}: refused, not a line pg_dump writes outside COPY data: {meta:?}"
        ));
    }
}

#[test]
fn a_data_entry_that_ends_copy_with_a_carriage_return_and_then_commits_is_refused() {
    // psql ends COPY data at `\.` + CR too; the filter must see what psql sees.
    let attack = Attack::new("");
    let mut line = 0;
    attack.craft(|b| {
        let text = b.text(DATA);
        let at = text.find(" FROM stdin;\n").unwrap() + 13;
        line = text[..at].lines().count() + 2;
        let text = format!("{}\\.\r\nCOMMIT;\n{}", &text[..at], &text[at..]);
        b.set_text(DATA, &text);
    });
    attack.refused(&format!(
        "load {DATA}: line {line}: refused, not a line pg_dump writes outside COPY data: \"COMMIT;\""
    ));
}

#[test]
fn a_copy_into_a_table_the_manifest_does_not_list_is_refused() {
    let attack = Attack::new("");
    let mut line = 0;
    attack.craft(|b| {
        let (text, at) = after_first_copy(
            &b.text(DATA),
            "COPY public.canary (id) FROM stdin;\n666\n\\.\n",
        );
        line = at;
        b.set_text(DATA, &text);
    });
    attack.refused(&format!(
        "load {DATA}: line {line}: refused, COPY into table public.canary, which the manifest does not list"
    ));
}

#[test]
fn a_setval_on_a_sequence_no_bundle_table_owns_is_refused_and_the_sequence_keeps_its_value() {
    // Sequences ignore rollback: the filter lets only sequences of the bundle's tables move.
    let attack = Attack::new("");
    attack.craft(|b| {
        let (text, _) = after_first_copy(
            &b.text(DATA),
            "SELECT pg_catalog.setval('public.canary_seq', 1000, true);\n",
        );
        b.set_text(DATA, &text);
    });
    let run = attack.ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("setval on a sequence that no table of the bundle owns; nothing was loaded"),
        "{}",
        run.stderr
    );
    attack.assert_unchanged();
    assert_eq!(attack.ferry.pending(), vec![attack.name.clone()]);
}

#[test]
fn a_schema_entry_that_commits_and_drops_a_table_fails_inside_the_transaction() {
    let attack = Attack::new("");
    let pre = attack.schema_entry("schema_pre");
    attack.craft(|b| {
        let text = b
            .text(&pre)
            .replace("\\unrestrict ", "COMMIT; DROP TABLE canary;\n\\unrestrict ");
        b.set_text(&pre, &text);
    });
    let run = attack.ferry.receiver(&["load"]);
    run.expect_code(1);
    for expected in [
        format!("error: load bundle {}: load into ", attack.name),
        "failed, nothing was changed (exit status: 3)".to_string(),
        "ERROR:  EXECUTE of transaction commands is not implemented".to_string(),
    ] {
        assert!(
            run.stderr.contains(&expected),
            "expected {expected:?} in\n{}",
            run.stderr
        );
    }
    attack.assert_unchanged();
    assert_eq!(attack.ferry.pending(), vec![attack.name.clone()]);
}

#[test]
fn a_schema_entry_with_a_shell_escape_is_refused() {
    for which in ["schema_pre", "schema_post"] {
        let attack = Attack::new("");
        let entry = attack.schema_entry(which);
        let meta = format!("\\! touch {}", attack.pwned.display());
        let mut line = 0;
        attack.craft(|b| {
            let text = b.text(&entry);
            line = text.lines().count() + 1;
            b.set_text(&entry, &format!("{text}{meta}\n"));
        });
        attack.refused(&format!(
            "load {entry}: line {line}: refused, a psql meta-command in a schema entry: {meta:?}"
        ));
    }
}

#[test]
fn a_complete_bundle_creates_unknown_tables_only_inside_its_transaction() {
    // The receiver has no list of tables: a complete bundle creates what its manifest
    // names (guarantee 6). It does so in the load's transaction, recorded in the ledger.
    let attack = Attack::new("");
    let good = std::fs::read(&attack.bundle).unwrap();
    attack.craft(|b| {
        let mut text = b.text(DATA);
        text.push_str("COMMIT;\n");
        b.set_text(DATA, &text);
    });
    let run = attack.ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("refused, not a line pg_dump writes outside COPY data: \"COMMIT;\""),
        "{}",
        run.stderr
    );
    // The table was created, then rolled back with the rest.
    attack.assert_unchanged();
    std::fs::write(&attack.bundle, good).unwrap();
    attack.ferry.receiver(&["load"]).expect_code(0);
    attack.ferry.assert_same("\"Report\"", "id");
    assert_eq!(
        attack.ferry.ledger(),
        vec![format!("{} complete applied", attack.name)]
    );
    assert_eq!(attack.ferry.target.sql("SELECT count(*) FROM canary"), "3");
}

#[test]
fn files_of_a_set_the_receiver_has_not_configured_are_refused_before_anything_changes() {
    let attack = Attack::new("[[files]]\nname = \"images\"\ndir = \"{scratch}/a/b/images\"\n");
    attack.craft(|b| b.entries.push(("files/secrets/x".into(), b"x".to_vec())));
    attack.refused("entry files/secrets/x belongs to file set \"secrets\" but the receiver config has no [[files]] entry named so; nothing was loaded");
    assert!(!attack.ferry.scratch.path("secrets").exists());
    assert!(!attack.ferry.scratch.path("a/b/images").exists());
}

#[test]
fn a_file_path_with_parent_components_goes_to_failed() {
    let attack = Attack::new("[[files]]\nname = \"images\"\ndir = \"{scratch}/a/b/images\"\n");
    attack.craft(|b| {
        b.entries
            .push(("files/images/../../x".into(), b"x".to_vec()))
    });
    let run = attack.ferry.receiver(&["load"]);
    run.expect_code(1);
    let expected = format!(
        "bundle {} failed verification: entry \"files/images/../../x\" refused: parent directory (..) in path",
        attack.name
    );
    assert!(
        run.stderr.contains(&expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
    // Refused by verification: moved to failed/ with its reason.
    assert_eq!(attack.ferry.pending(), Vec::<String>::new());
    assert_eq!(attack.ferry.inbox_sub("failed").len(), 2);
    assert!(!attack.ferry.scratch.path("a/x").exists());
    attack.assert_unchanged();
}

/// A partial bundle of `"AndroidRequests_report"` after a complete one was applied.
fn partial_attack() -> (Ferry, String) {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    ferry.ship();
    ferry
        .source
        .sql("INSERT INTO \"AndroidRequests_report\" (message) VALUES ('new')");
    ferry.sender(&["partial"]).expect_code(0);
    let name = ferry.pending()[0].clone();
    (ferry, name)
}

fn partial_refused(ferry: &Ferry, name: &str, error: &str) {
    let before = Ferry::rows(&ferry.target, "\"AndroidRequests_report\"", "id");
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    let expected = format!("error: load bundle {name}: {error}");
    assert!(
        run.stderr.contains(&expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
    assert_eq!(
        Ferry::rows(&ferry.target, "\"AndroidRequests_report\"", "id"),
        before
    );
    assert_eq!(ferry.ledger().len(), 1);
    assert_eq!(ferry.pending(), vec![name.to_string()]);
}

#[test]
fn a_partial_naming_a_table_missing_on_the_target_is_refused() {
    let (ferry, name) = partial_attack();
    let path = ferry.scratch.inbox.join(&name);
    let mut bundle = Bundle::read(&path);
    bundle.manifest["tables"][0]["table"]["name"] = "Secret_table".into();
    bundle.write(&path);
    partial_refused(
        &ferry,
        &name,
        "table public.Secret_table does not exist on the target; hint: load a complete bundle first (run `sender complete`)",
    );
}

#[test]
fn a_partial_table_without_a_key_or_rows_for_no_table_is_refused() {
    let (ferry, name) = partial_attack();
    let path = ferry.scratch.inbox.join(&name);
    let good = std::fs::read(&path).unwrap();
    let mut bundle = Bundle::read(&path);
    bundle.manifest["tables"][0]["key"] = serde_json::Value::Null;
    bundle.write(&path);
    partial_refused(
        &ferry,
        &name,
        "table public.AndroidRequests_report has no key to upsert by",
    );
    std::fs::write(&path, &good).unwrap();
    let mut bundle = Bundle::read(&path);
    let rows = bundle
        .entries
        .iter_mut()
        .find(|(n, _)| n.starts_with("rows/"))
        .unwrap();
    rows.0 = "rows/0007-000000.csv".into();
    bundle.write(&path);
    partial_refused(
        &ferry,
        &name,
        "rows/0007-000000.csv names no table of the manifest",
    );
}

#[test]
fn values_that_look_like_sql_or_meta_commands_arrive_as_data_in_both_kinds() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    let pwned = ferry.scratch.path("pwned");
    let hostile = format!(
        "x\n\\.\nCOMMIT;\n\\! touch {0}\n\\o {0}\n\\.\r\nDROP TABLE canary;",
        pwned.display()
    );
    let insert = |id: i32| {
        ferry.source.sql(&format!(
            "INSERT INTO \"AndroidRequests_report\" (id, message) VALUES ({id}, '{}')",
            hostile.replace('\'', "''")
        ))
    };
    insert(100);
    ferry
        .target
        .sql("CREATE TABLE canary (id int); INSERT INTO canary VALUES (1)");
    ferry.ship();
    insert(101);
    ferry.ship_partial(&[]);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(
        ferry.target.sql("SELECT count(*) FROM \"AndroidRequests_report\" WHERE message LIKE '%DROP TABLE canary;'"),
        "2"
    );
    assert_eq!(ferry.target.sql("SELECT count(*) FROM canary"), "1");
    assert!(!pwned.exists());
    assert_eq!(ferry.ledger().len(), 2);
}

#[test]
fn an_extension_the_target_cannot_install_is_refused_by_name_before_anything_changes() {
    let attack = Attack::new("");
    attack.craft(|b| {
        b.manifest["dependencies"] = serde_json::json!([{
            "kind": "extension",
            "identity": "pgferry_no_such_extension",
            "schema": "public",
            "ddl": "CREATE EXTENSION IF NOT EXISTS pgferry_no_such_extension WITH SCHEMA public",
        }]);
    });
    attack.refused("extension pgferry_no_such_extension is not installed on the target and cannot be: it is not available there; hint: install the package that provides it on the target server (for the contrib extensions: postgresql-contrib)");
}
