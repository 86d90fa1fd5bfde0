//! A crash at every named step: the sender and the receiver are killed with SIGKILL at a
//! fail point (`FAILPOINTS=<step>=return`, compiled into the test builds), then run again.
//! The end state must always be the correct one: each bundle applied exactly once, no
//! duplicate or missing rows, every file whole, no stray temporary files.

use std::path::Path;

use crate::ferry::*;
use crate::util::*;

const SCHEMA: &str = r#"
CREATE TABLE "AndroidRequests_report" (id serial PRIMARY KEY, "timeStamp" timestamptz NOT NULL DEFAULT now(), "imageName" text);
INSERT INTO "AndroidRequests_report" ("imageName") SELECT 'img' || g || '.jpeg' FROM generate_series(1, 300) g;
"#;

fn ferry() -> Ferry {
    let ferry = Ferry::with(
        SCHEMA,
        r#"["public.AndroidRequests_report"]"#,
        "[[partial.tables]]\ntable = \"AndroidRequests_report\"\nchanged_at = \"timeStamp\"\n\n[[files]]\nname = \"images\"\ndir = \"{scratch}/src-images\"\ninclude = [\"*.jpeg\"]\npartial = true\nreferenced_by = [\"public.AndroidRequests_report.imageName\"]\n",
        "[[files]]\nname = \"images\"\ndir = \"{scratch}/dst-images\"\n\n[postprocess]\ncommand = [\"sh\", \"-c\", \"echo $PGFERRY_KIND >> {scratch}/hook.log\"]\n",
    );
    let src = ferry.scratch.path("src-images");
    std::fs::create_dir_all(&src).unwrap();
    for i in 1..=5 {
        std::fs::write(src.join(format!("img{i}.jpeg")), vec![i as u8; 50_000]).unwrap();
    }
    ferry
}

/// Runs `program` with `failpoints` armed (`step=return`: kill at that step), and checks
/// that it died by SIGKILL there.
fn crash(ferry: &Ferry, program: &str, failpoints: &str, args: &[&str]) {
    let config = match program {
        "sender" => &ferry.sender_config,
        _ => &ferry.receiver_config,
    };
    let mut all = vec!["-c", config.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = run_with(program, &all, &[("FAILPOINTS", failpoints)]);
    assert_eq!(
        run.code, -1,
        "{program} was not killed at {failpoints} (is it built with its `failpoints` feature?)\n{}",
        run.stderr
    );
}

/// Files whose names mark them as temporary, anywhere under `dir`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            found.extend(temporaries(&entry.path()));
        } else if name.ends_with(".part") || name.contains("pgferry-tmp") {
            found.push(name);
        }
    }
    found
}

/// The correct end state after everything was shipped and loaded.
fn assert_correct_end_state(ferry: &Ferry) {
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    let ledger = ferry.ledger();
    // A complete whose sender died before it moved the mark is superseded by the next one.
    let archived = [ferry.inbox_sub("applied"), ferry.inbox_sub("superseded")].concat();
    assert_eq!(
        ledger.len(),
        archived.len(),
        "ledger {ledger:?} vs applied and superseded {archived:?}"
    );
    for bundle in &archived {
        assert_eq!(
            ledger
                .iter()
                .filter(|l| l.starts_with(bundle.as_str()))
                .count(),
            1,
            "{bundle} is not in the ledger exactly once: {ledger:?}"
        );
    }
    assert_eq!(ferry.pending(), Vec::<String>::new());
    for i in 1..=5 {
        let copied = std::fs::read(ferry.scratch.path(&format!("dst-images/img{i}.jpeg"))).unwrap();
        assert_eq!(copied, vec![i as u8; 50_000], "img{i}.jpeg differs");
    }
    assert_eq!(temporaries(&ferry.scratch.inbox), Vec::<String>::new());
    assert_eq!(
        temporaries(&ferry.scratch.path("dst-images")),
        Vec::<String>::new()
    );
}

fn sender_crash_then_recover(step: &str) {
    let ferry = ferry();
    crash(&ferry, "sender", &format!("{step}=return"), &["complete"]);
    ferry.source.sql(r#"UPDATE "AndroidRequests_report" SET "imageName" = 'img1.jpeg', "timeStamp" = now() WHERE id = 7"#);
    ferry.sender(&["complete"]).expect_code(0);
    ferry
        .source
        .sql(r#"INSERT INTO "AndroidRequests_report" ("imageName") VALUES ('img2.jpeg')"#);
    ferry.sender(&["partial"]).expect_code(0);
    ferry.receiver(&["load"]).expect_code(0);
    assert_correct_end_state(&ferry);
}

#[test]
fn sender_killed_after_the_dump() {
    sender_crash_then_recover("sender-after-dump");
}

#[test]
fn sender_killed_before_the_rename() {
    sender_crash_then_recover("sender-before-rename");
}

#[test]
fn sender_killed_after_the_rename_before_the_high_water_mark() {
    sender_crash_then_recover("sender-after-rename");
}

fn receiver_crash_then_recover(failpoints: &str) {
    let ferry = receiver_crash(failpoints);
    receiver_recover(&ferry);
}

/// A complete and a partial bundle pending, and a load killed at `failpoints`.
fn receiver_crash(failpoints: &str) -> Ferry {
    let ferry = ferry();
    ferry.sender(&["complete"]).expect_code(0);
    ferry.source.sql(r#"UPDATE "AndroidRequests_report" SET "imageName" = 'img3.jpeg', "timeStamp" = now() WHERE id <= 10"#);
    ferry.sender(&["partial"]).expect_code(0);
    crash(&ferry, "receiver", failpoints, &["load"]);
    ferry
}

fn receiver_recover(ferry: &Ferry) {
    ferry.receiver(&["load"]).expect_code(0);
    ferry.receiver(&["load"]).expect_code(0);
    assert_correct_end_state(ferry);
    let hook = std::fs::read_to_string(ferry.scratch.path("hook.log")).unwrap_or_default();
    assert!(
        hook.ends_with("complete\npartial\n"),
        "the hook did not finish for every bundle: {hook:?}"
    );
}

#[test]
fn receiver_killed_right_after_the_commit() {
    receiver_crash_then_recover("receiver-install=return");
}

#[test]
fn receiver_killed_during_the_file_install() {
    // The first file is installed, then the crash: the next install is the second call.
    receiver_crash_then_recover("receiver-install=1*off->return");
}

#[test]
fn receiver_killed_during_the_hook() {
    let ferry = receiver_crash("receiver-during-hook=return");
    // The hook runs in a process group of its own and outlives the killed load: its line
    // is written before the next load runs the hook again, not whenever it gets the CPU.
    let log = ferry.scratch.path("hook.log");
    wait_for(
        || std::fs::read_to_string(&log).is_ok_and(|text| text == "complete\n"),
        "the hook the killed load started to finish",
    );
    receiver_recover(&ferry);
}

#[test]
fn receiver_killed_after_the_hook_before_the_applied_mark() {
    receiver_crash_then_recover("receiver-after-hook=return");
}
