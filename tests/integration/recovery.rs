//! Issue 20: a receiver recovers by itself. A bundle the target refuses blocks the queue
//! with one alert and a `status` that names it; the next complete bundle supersedes it and
//! everything older (guarantee 4), and a fixed target lets the next load retry it.

use crate::ferry::*;
use crate::operations::{host, mails_to, own_mailbox};
use crate::util::*;

const RECREATE: &str = "[complete]\non_schema_change = \"recreate\"\n";

/// A shipped ferry whose receiver recreates tables whose columns changed.
fn shipped() -> (Ferry, String) {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, RECREATE);
    let to = own_mailbox(&ferry);
    ferry.ship();
    (ferry, to)
}

/// Changes a row on the primary, so the next partial carries it.
fn touch(ferry: &Ferry, id: u32, message: &str) {
    ferry.source.sql(&format!(
        r#"UPDATE "AndroidRequests_report" SET message = '{message}', "timeStamp" = clock_timestamp() WHERE id = {id}"#
    ));
}

/// `sender partial` or `complete`; returns the bundle it published.
fn send(ferry: &Ferry, job: &str) -> String {
    let before = ferry.pending();
    ferry.sender(&[job]).expect_code(0);
    let mut new: Vec<String> = ferry
        .pending()
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    assert_eq!(new.len(), 1, "{job} published {new:?}");
    new.remove(0)
}

/// The primary gains a column, so the receiver refuses the next partial (guarantee 6).
fn add_column_and_send_a_refused_partial(ferry: &Ferry) -> String {
    ferry.source.sql(
        r#"ALTER TABLE "AndroidRequests_report" ADD COLUMN note text DEFAULT 'added on the primary'"#,
    );
    touch(ferry, 1, "after the column");
    let partial = send(ferry, "partial");
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: load bundle {partial}: table public.AndroidRequests_report on the target differs from the bundle: "
        )) && run
            .stderr
            .contains(r#"column "note" (text) is missing on the target"#)
            && run.stderr.contains("\nhint: the bundle stays pending and blocks the bundles after it; the next complete bundle supersedes it (run `sender complete` on the primary; for a schema change set [complete] on_schema_change = \"recreate\" on the receiver), or fix the target and the next load retries it"),
        "{}",
        run.stderr
    );
    partial
}

fn status_json(ferry: &Ferry) -> serde_json::Value {
    let run = ferry.receiver(&["status", "--json"]);
    run.expect_code(0);
    serde_json::from_str(&run.stdout).unwrap()
}

/// `receiver status --json` names `bundle` as the block, since when, and why.
fn assert_blocked_by(ferry: &Ferry, bundle: &str, reason: &str) {
    let status = status_json(ferry);
    assert_eq!(status["blocked"]["bundle"], bundle, "{status}");
    assert!(status["blocked"]["since"].as_str().is_some(), "{status}");
    assert!(
        status["blocked"]["reason"]
            .as_str()
            .unwrap()
            .contains(reason),
        "{status}"
    );
}

#[test]
fn issue_20_a_refused_partial_blocks_with_one_alert_until_a_complete_supersedes_it() {
    let (ferry, to) = shipped();
    let partial = add_column_and_send_a_refused_partial(&ferry);
    // Tried again: still refused, still pending, no second alert.
    ferry.receiver(&["load"]).expect_code(1);
    assert_eq!(ferry.pending(), vec![partial.clone()]);
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].subject,
        format!("[pgferry] FAILED: load on {}", host())
    );
    assert!(
        mails[0].body.contains("What to check:\n  the target refused the bundle named above, which now blocks the receiver's queue (see `receiver status`). The next complete bundle supersedes it"),
        "{}",
        mails[0].body
    );

    assert_blocked_by(
        &ferry,
        &partial,
        r#"column "note" (text) is missing on the target"#,
    );
    let text = ferry.receiver(&["status"]);
    let line = text.line("blocked by");
    assert!(
        line.starts_with(&format!("blocked by     {partial} since ")),
        "{line}"
    );
    assert!(
        text.stdout.contains(
            "the next complete bundle supersedes it (run `sender complete` on the primary"
        ),
        "{}",
        text.stdout
    );

    let complete = send(&ferry, "complete");
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(ferry.pending(), Vec::<String>::new());
    assert_eq!(ferry.inbox_sub("superseded"), vec![partial.clone()]);
    let ledger = ferry.ledger();
    assert!(
        ledger.contains(&format!("{partial} partial superseded"))
            && ledger.contains(&format!("{complete} complete applied")),
        "{ledger:?}"
    );
    assert_eq!(status_json(&ferry)["blocked"], serde_json::Value::Null);
    assert!(!ferry.receiver(&["status"]).stdout.contains("blocked by"));
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(
        mails[1].subject,
        format!("[pgferry] RECOVERED: load on {}", host())
    );

    // The queue moves on as before.
    touch(&ferry, 2, "after the recovery");
    ferry.ship_partial(&[]);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}

#[test]
fn a_pending_complete_supersedes_every_older_pending_bundle_and_the_load_starts_there() {
    let (ferry, _) = shipped();
    let refused = add_column_and_send_a_refused_partial(&ferry);
    touch(&ferry, 2, "in the second partial");
    let second = send(&ferry, "partial");
    let complete = send(&ferry, "complete");
    touch(&ferry, 3, "after the complete");
    let last = send(&ferry, "partial");

    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(ferry.pending(), Vec::<String>::new());
    assert_eq!(
        ferry.inbox_sub("superseded"),
        vec![refused.clone(), second.clone()]
    );
    let ledger = ferry.ledger();
    for expected in [
        format!("{refused} partial superseded"),
        format!("{second} partial superseded"),
        format!("{complete} complete applied"),
        format!("{last} partial applied"),
    ] {
        assert!(ledger.contains(&expected), "{expected} not in {ledger:?}");
    }
    assert_eq!(ledger.len(), 5, "{ledger:?}");
}

#[test]
fn a_damaged_complete_supersedes_nothing() {
    let (ferry, _) = shipped();
    touch(&ferry, 1, "in the partial");
    let partial = send(&ferry, "partial");
    let complete = send(&ferry, "complete");
    let path = ferry.scratch.inbox.join(&complete);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();

    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert_eq!(
        ferry.inbox_sub("failed"),
        vec![
            complete.clone(),
            format!("{}.reason.txt", complete.trim_end_matches(".gz"))
        ]
    );
    assert_eq!(ferry.inbox_sub("superseded"), Vec::<String>::new());
    assert!(ferry
        .ledger()
        .contains(&format!("{partial} partial applied")));
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}

#[test]
fn a_bundle_the_target_refuses_is_retried_once_the_target_is_fixed() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    ferry.ship();
    ferry.target.sql(
        r#"ALTER TABLE "AndroidRequests_report" ADD CONSTRAINT no_shouting CHECK (message <> upper(message))"#,
    );
    touch(&ferry, 4, "LOUD");
    let partial = send(&ferry, "partial");
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("violates check constraint \"no_shouting\""),
        "{}",
        run.stderr
    );
    assert_blocked_by(
        &ferry,
        &partial,
        "violates check constraint \"no_shouting\"",
    );

    ferry
        .target
        .sql(r#"ALTER TABLE "AndroidRequests_report" DROP CONSTRAINT no_shouting"#);
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert!(ferry
        .ledger()
        .contains(&format!("{partial} partial applied")));
    assert_eq!(status_json(&ferry)["blocked"], serde_json::Value::Null);
}

#[test]
fn a_load_that_fails_for_a_passing_reason_blocks_nothing() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    ferry.ship();
    touch(&ferry, 5, "in the partial");
    send(&ferry, "partial");
    let down = ferry.scratch.write(
        "receiver-down.toml",
        &std::fs::read_to_string(&ferry.receiver_config)
            .unwrap()
            .replace(
                &format!("port = {}", ferry.target.port),
                &format!("port = {}", free_port()),
            ),
    );
    run_config("receiver", &down, &["load"]).expect_code(1);
    assert_eq!(status_json(&ferry)["blocked"], serde_json::Value::Null);
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}
