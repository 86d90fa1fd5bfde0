//! Issue 13, part 2: a transaction open longer than `partial.overlap` never loses its rows
//! (guarantee 4). The window's end, and the high-water mark, wait at its start.

use std::io::Write;
use std::process::{Child, ChildStdin};

use crate::ferry::*;
use crate::util::*;

/// A transaction of the test's own, left open in a `psql` until [`Open::commit`].
struct Open {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: String,
    xact_start: String,
}

impl Open {
    /// Runs `sql` in a transaction it leaves open; returns once the server shows it idle
    /// in that transaction, so the statement has run.
    fn begin(db: &Db, sql: &str) -> Open {
        let app = unique("long_txn");
        let (child, mut stdin) = db.kept_session(&app);
        writeln!(stdin, "BEGIN;\n{sql};").unwrap();
        stdin.flush().unwrap();
        let query = format!(
            "SELECT pid || ' ' || to_json(xact_start)::text FROM pg_stat_activity WHERE application_name = '{app}' AND state = 'idle in transaction'"
        );
        let mut found = String::new();
        wait_for(
            || {
                found = db.sql(&query);
                !found.is_empty()
            },
            "the test's transaction to be open",
        );
        let (pid, xact_start) = found.split_once(' ').unwrap();
        Open {
            child,
            stdin: Some(stdin),
            pid: pid.to_string(),
            xact_start: xact_start.trim_matches('"').to_string(),
        }
    }

    fn commit(mut self) {
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reports with an overlap of zero: only the wait for open transactions can cover one.
fn ferry() -> Ferry {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    let text = std::fs::read_to_string(&ferry.sender_config).unwrap();
    std::fs::write(
        &ferry.sender_config,
        text.replace("overlap = \"2m\"", "overlap = \"0s\""),
    )
    .unwrap();
    ferry
}

fn touch(ferry: &Ferry, id: u32) {
    ferry.source.sql(&format!(
        r#"UPDATE "AndroidRequests_report" SET message = 'touched', "timeStamp" = clock_timestamp() WHERE id = {id}"#
    ));
}

fn newest_window_end(ferry: &Ferry) -> String {
    let newest = ferry.inbox_sub("applied").pop().unwrap();
    ferry.manifest(&newest)["window"]["end"]
        .as_str()
        .unwrap()
        .to_string()
}

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?}: {e}"))
        .to_utc()
}

/// Where a window ends, or the mark stays, while `long` is open: one microsecond before
/// it began, so the next window, `(end, ...]`, takes its rows.
fn just_before(long: &Open) -> chrono::DateTime<chrono::Utc> {
    at(&long.xact_start) - chrono::Duration::microseconds(1)
}

#[test]
fn a_transaction_open_across_two_partials_longer_than_the_overlap_loses_no_rows() {
    let ferry = ferry();
    ferry.ship();
    // `timeStamp` defaults to now(): the transaction's start, before both snapshots.
    let long = Open::begin(
        &ferry.source,
        r#"INSERT INTO "AndroidRequests_report" (message) VALUES ('from the long transaction')"#,
    );

    touch(&ferry, 1);
    let run = ferry.sender(&["partial"]);
    run.expect_code(0);
    assert!(
        run.stderr
            .contains("an open transaction holds the window's end back until it ends"),
        "{}",
        run.stderr
    );
    ferry.receiver(&["load"]).expect_code(0);
    assert_eq!(at(&newest_window_end(&ferry)), just_before(&long));
    let status = ferry.sender(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let held = &status["high_water_mark"]["held_back"];
    assert_eq!(held["pid"].to_string(), long.pid, "{status}");
    assert_eq!(at(held["since"].as_str().unwrap()), at(&long.xact_start));
    let text = ferry.sender(&["status"]);
    assert!(
        text.line("held back")
            .contains(&format!(": the transaction of pid {} (", long.pid)),
        "{}",
        text.stdout
    );

    // Still open at the second partial: its end stays put.
    touch(&ferry, 2);
    ferry.ship_partial(&[]);
    assert_eq!(at(&newest_window_end(&ferry)), just_before(&long));

    long.commit();
    ferry.ship_partial(&[]);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(
        ferry.target.sql(
            r#"SELECT count(*) FROM "AndroidRequests_report" WHERE message = 'from the long transaction'"#
        ),
        "1"
    );
    let status = ferry.sender(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        status["high_water_mark"]["held_back"],
        serde_json::Value::Null
    );
}

#[test]
fn a_transaction_open_at_a_complete_is_caught_by_the_next_partial() {
    let ferry = ferry();
    let long = Open::begin(
        &ferry.source,
        r#"INSERT INTO "AndroidRequests_report" (message) VALUES ('open during the complete')"#,
    );
    ferry.ship();
    let status = ferry.sender(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(
        at(status["high_water_mark"]["high_water_mark"]
            .as_str()
            .unwrap()),
        just_before(&long)
    );
    long.commit();
    ferry.ship_partial(&[]);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}

#[test]
fn check_fails_when_the_role_cannot_see_the_transactions_of_other_roles() {
    let ferry = ferry();
    let role = unique("sender_role");
    ferry.source.sql(&format!(
        r#"CREATE ROLE "{role}" LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}""#
    ));
    let text = std::fs::read_to_string(&ferry.sender_config).unwrap();
    let user = format!("user = \"{}\"", Env::get().var("PG_USER"));
    assert!(text.contains(&user));
    let config = ferry.scratch.write(
        "sender-role.toml",
        &text.replacen(&user, &format!("user = \"{role}\""), 1),
    );
    std::fs::create_dir_all(ferry.scratch.path("sender-state")).unwrap();

    let run = run_config("sender", &config, &["check"]);
    run.expect_code(1);
    assert_eq!(
        run.line("FAIL open transactions:"),
        format!("FAIL open transactions: role \"{role}\" cannot see the transactions of other roles, so a partial cannot wait for one that is still open and would lose its rows; hint: GRANT pg_read_all_stats TO \"{role}\" (or pg_monitor)")
    );

    ferry
        .source
        .sql(&format!(r#"GRANT pg_read_all_stats TO "{role}""#));
    let run = run_config("sender", &config, &["check"]);
    assert_eq!(
        run.line("ok   open transactions:"),
        format!("ok   open transactions: role \"{role}\" sees every session's transaction; none has been open for over an hour")
    );
    ferry.source.sql(&format!(
        r#"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"; REVOKE pg_read_all_stats FROM "{role}""#
    ));
    ferry.source.sql(&format!(r#"DROP ROLE "{role}""#));
}
