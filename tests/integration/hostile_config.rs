//! Hostile configuration: identifiers that look like SQL, malformed TOML, and names with
//! quotes, spaces, capitals and unicode that must work end to end.

use crate::ferry::*;
use crate::util::*;

/// A schema and table whose names need every kind of quoting, with such columns too.
const WEIRD: &str = r#"
CREATE SCHEMA "Sch ema";
CREATE TABLE "Sch ema"."We""ird Tåble; DROP" (
    "ïd ""key""" integer PRIMARY KEY,
    "Välue; --" text,
    "changed At" timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON "Sch ema"."We""ird Tåble; DROP" ("changed At");
INSERT INTO "Sch ema"."We""ird Tåble; DROP" VALUES (1, 'one', now() - interval '1 day'), (2, 'two', now() - interval '1 day');
CREATE TABLE canary (id integer PRIMARY KEY);
INSERT INTO canary VALUES (1);
"#;

const WEIRD_TABLE: &str = r#""Sch ema"."We""ird Tåble; DROP""#;

#[test]
fn identifiers_with_quotes_spaces_capitals_and_unicode_work_end_to_end() {
    let ferry = Ferry::with(
        WEIRD,
        r#"['Sch ema."We""ird Tåble; DROP"', "canary"]"#,
        "[[partial.tables]]\ntable = 'Sch ema.\"We\"\"ird Tåble; DROP\"'\nchanged_at = \"changed At\"\n",
        "",
    );
    ferry.ship();
    ferry.assert_same(WEIRD_TABLE, "1");
    ferry.source.sql(&format!(
        r#"INSERT INTO {WEIRD_TABLE} VALUES (3, 'three; DROP TABLE canary; --', now());
           UPDATE {WEIRD_TABLE} SET "Välue; --" = 'changed', "changed At" = now() WHERE "ïd ""key""" = 1;"#
    ));
    ferry.ship_partial(&[]);
    ferry.assert_same(WEIRD_TABLE, "1");
    assert_eq!(ferry.target.sql("SELECT count(*) FROM canary"), "1");
    let check = ferry.sender(&["check"]);
    check.expect_code(0);
    assert!(
        check
            .line("ok   partial table Sch ema.\"We\"\"ird Tåble; DROP\"")
            .contains("is indexed"),
        "{}",
        check.stdout
    );
}

/// Runs `sender partial` with the partial table entry replaced by `entry`.
fn partial_with(entry: &str) -> (Run, String, Db, Scratch) {
    let scratch = Scratch::new();
    let source = Db::create(Cluster::Primary);
    source.sql(WEIRD);
    let text = sender_toml(&scratch, &source, r#"["canary"]"#, entry);
    let path = scratch.write("sender.toml", &text);
    let run = run_config("sender", &path, &["partial"]);
    (run, path.display().to_string(), source, scratch)
}

#[test]
fn sql_where_an_identifier_goes_is_a_config_error_and_never_runs() {
    let (run, file, source, _scratch) = partial_with(
        "[[partial.tables]]\ntable = \"canary\"\nchanged_at = \"id\\\"; DROP TABLE canary; --\"\n",
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {file}, key partial.tables[0].changed_at: table public.canary has no column \"id\\\"; DROP TABLE canary; --\""
        )),
        "{}",
        run.stderr
    );
    assert_eq!(source.sql("SELECT count(*) FROM canary"), "1");

    let (run, file, source, _scratch) = partial_with(
        "[[partial.tables]]\ntable = \"canary; DROP TABLE canary\"\nchanged_at = \"id\"\n",
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "error: config {file}, key partial.tables[0].table: \"canary; DROP TABLE canary\" matches no table in the source database"
        )),
        "{}",
        run.stderr
    );
    assert_eq!(source.sql("SELECT count(*) FROM canary"), "1");
}

#[test]
fn a_newline_in_an_identifier_is_refused_with_exit_2() {
    let (run, file, _source, _scratch) =
        partial_with("[[partial.tables]]\ntable = \"canary\\nDROP\"\nchanged_at = \"id\"\n");
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!("error: config {file}"))
            && run.stderr.contains("partial.tables[0].table"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn malformed_toml_is_a_usage_error_naming_the_line() {
    let scratch = Scratch::new();
    let path = scratch.write(
        "sender.toml",
        "[source]\nhost = \"x\"\ntables = [\"a\"\n[partial\n",
    );
    let run = run_config("sender", &path, &["check"]);
    run.expect_code(2);
    assert!(
        run.stderr
            .contains(&format!("error: config {}", path.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("line "), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn a_host_key_of_another_type_is_refused() {
    let ferry = Ferry::new("CREATE TABLE t (id int PRIMARY KEY)", r#"["t"]"#);
    let env = Env::get();
    // known_hosts lists an RSA key for the server, which only has an ed25519 one.
    let rsa = std::fs::read_to_string(format!("{}.pub", env.var("SSH_RSA_KEY"))).unwrap();
    let rsa: Vec<&str> = rsa.split_whitespace().take(2).collect();
    let port = env.var("SSH_PORT");
    let known = ferry.scratch.write(
        "wrong_type_known_hosts",
        &format!("[127.0.0.1]:{port} {} {}\n", rsa[0], rsa[1]),
    );
    let text = std::fs::read_to_string(&ferry.sender_config)
        .unwrap()
        .replace(env.var("SSH_KNOWN_HOSTS"), known.to_str().unwrap());
    let config = ferry.scratch.write("sender-wrong-type.toml", &text);
    let run = run_config("sender", &config, &["complete"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!("127.0.0.1:{port}")),
        "the error names the host: {}",
        run.stderr
    );
    assert_eq!(ferry.pending(), Vec::<String>::new());
    assert!(
        list_dir(&ferry.scratch.inbox).is_empty(),
        "something was uploaded"
    );
}
