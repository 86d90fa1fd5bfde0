//! Hostile conditions around the jobs: a sender clock that jumps, hooks that hang or
//! flood, secrets that must never leak, and who may read what pgferry writes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ferry::*;
use crate::util::*;

/// Runs `sender` with its clock `offset` away from the real one (libfaketime).
fn sender_at(ferry: &Ferry, offset: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("faketime");
    cmd.args(["-f", offset])
        .arg(bin("sender"))
        .args(["-c", ferry.sender_config.to_str().unwrap()])
        .args(args)
        .env_remove("PGFERRY_LOG");
    Run::from(cmd.output().unwrap())
}

#[test]
fn a_sender_clock_that_jumps_back_neither_skips_rows_nor_reorders_bundles() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    ferry.sender(&["complete"]).expect_code(0);
    ferry.source.sql(
        r#"UPDATE "AndroidRequests_report" SET message = 'after the complete', "timeStamp" = now() WHERE id = 1;
           INSERT INTO "AndroidRequests_report" (message) VALUES ('new after the complete');"#,
    );
    // The local clock is two hours behind: the window and the bundle's name must come
    // from the database's clock, or this partial would sort before the complete.
    sender_at(&ferry, "-2h", &["partial"]).expect_code(0);
    let pending = ferry.pending();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].ends_with("-complete.tar.gz"), "{pending:?}");
    assert!(pending[1].ends_with("-partial.tar.gz"), "{pending:?}");
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    // And forward again: the next partial still starts where the last one ended.
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_report" SET message = 'later', "timeStamp" = now() WHERE id = 2"#);
    ferry.ship_partial(&[]);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}

#[test]
fn a_hook_that_hangs_is_killed_at_its_timeout_with_everything_it_started() {
    let ferry = Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        "",
        "[postprocess]\ncommand = [\"sh\", \"-c\", \"sleep 60 & echo $! > {scratch}/grandchild; sleep 60\"]\ntimeout = \"1s\"\n",
    );
    ferry.sender(&["complete"]).expect_code(0);
    let started = Instant::now();
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the hook was not stopped at its timeout"
    );
    assert!(
        run.stderr
            .contains("postprocess command \"sh\" did not finish within 1s; it was killed"),
        "{}",
        run.stderr
    );
    let grandchild = std::fs::read_to_string(ferry.scratch.path("grandchild")).unwrap();
    // Gone, or a zombie waiting for init to reap it: either way it no longer runs.
    let stat =
        std::fs::read_to_string(format!("/proc/{}/stat", grandchild.trim())).unwrap_or_default();
    let alive = stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| !rest.trim_start().starts_with('Z') && !rest.trim().is_empty());
    assert!(!alive, "a process the hook started outlived its timeout");
    assert_eq!(ferry.ledger().len(), 1, "the data stays applied");
    assert_eq!(
        ferry.pending().len(),
        1,
        "the bundle stays pending for the hook"
    );
}

#[test]
fn a_hook_that_prints_megabytes_is_captured_with_a_limit() {
    let ferry = Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        "",
        "[postprocess]\ncommand = [\"sh\", \"-c\", \"head -c 20000000 /dev/zero | tr '\\\\0' x; head -c 20000000 /dev/zero | tr '\\\\0' y >&2; exit 4\"]\n",
    );
    ferry.sender(&["complete"]).expect_code(0);
    let run = ferry.receiver(&["load"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("postprocess command \"sh\" failed (exit status: 4): yyyy"),
        "{}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        run.stderr.len() < 200_000,
        "the hook's output reached the log unbounded: {} bytes",
        run.stderr.len()
    );
    assert_eq!(ferry.ledger().len(), 1, "the data stays applied");
}

/// Every place pgferry writes text an operator or a mail server sees.
fn everything_written(ferry: &Ferry, runs: &[&Run]) -> String {
    let mut all = String::new();
    for run in runs {
        all.push_str(&run.stdout);
        all.push_str(&run.stderr);
    }
    for dir in [
        ferry.scratch.path("sender-state"),
        ferry.scratch.path("receiver-state"),
    ] {
        for entry in walk(&dir) {
            all.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
        }
    }
    for bundle in ferry.inbox_sub("applied") {
        all.push_str(&ferry.manifest(&bundle).to_string());
    }
    all
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_secret_appears_in_logs_alerts_manifests_state_or_status() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    let db_secret = "db-secret-7f3a9c";
    let smtp_secret = "smtp-secret-51be02";
    let key_text = std::fs::read_to_string(Env::get().var("SSH_KEY")).unwrap();
    let key_line = key_text
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 40)
        .unwrap()
        .to_string();
    let env = [
        ("PGPASSWORD", db_secret),
        ("PGFERRY_SMTP_PASSWORD", smtp_secret),
    ];
    let run_in = |program: &str, config: &std::path::Path, args: &[&str]| {
        let mut all = vec!["-v", "-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        run_with(program, &all, &env)
    };
    let failing = ferry.unreachable_sender_config();
    // A receiver whose alerts authenticate with the planted SMTP password (the test server
    // offers no AUTH, so sending fails and is logged) and whose target is down.
    let target_port = format!("port = {}\n", ferry.target.port);
    let receiver_text = std::fs::read_to_string(&ferry.receiver_config).unwrap();
    assert!(receiver_text.contains(&target_port));
    let receiver_failing = ferry.scratch.write(
        "receiver-failing.toml",
        &receiver_text
            .replace(&target_port, &format!("port = {}\n", free_port()))
            .replace(
                "security = \"none\"\n",
                "security = \"none\"\nusername = \"pgferry\"\npassword_env = \"PGFERRY_SMTP_PASSWORD\"\n",
            ),
    );
    let runs = [
        run_in("sender", &ferry.sender_config, &["check"]),
        run_in("sender", &failing, &["complete"]),
        run_in("sender", &ferry.sender_config, &["complete"]),
        run_in("sender", &ferry.sender_config, &["partial"]),
        run_in("sender", &ferry.sender_config, &["check-remote"]),
        run_in("sender", &ferry.sender_config, &["status", "--json"]),
        run_in("receiver", &receiver_failing, &["load"]),
        run_in("receiver", &ferry.receiver_config, &["load"]),
        run_in("receiver", &ferry.receiver_config, &["status", "--json"]),
        run_in("receiver", &ferry.receiver_config, &["check"]),
    ];
    runs[2].expect_code(0);
    runs[7].expect_code(0);
    assert!(runs[1].stderr.contains("alert sent"), "{}", runs[1].stderr);
    runs[6].expect_code(1);
    assert!(
        runs[6].stderr.contains("could not send the alert email"),
        "{}",
        runs[6].stderr
    );
    let run_refs: Vec<&Run> = runs.iter().collect();
    let written = everything_written(&ferry, &run_refs);
    for secret in [db_secret, smtp_secret, key_line.as_str()] {
        assert!(!written.contains(secret), "secret {secret:?} leaked");
    }
    // The alert emails themselves, as the SMTP server stored them.
    let maildir = std::path::Path::new(Env::get().var("SMTP_MAILDIR"));
    for mail in walk(maildir) {
        let text = String::from_utf8_lossy(&std::fs::read(mail).unwrap()).into_owned();
        for secret in [db_secret, smtp_secret, key_line.as_str()] {
            assert!(
                !text.contains(secret),
                "secret {secret:?} leaked into an alert"
            );
        }
    }
}

#[test]
fn what_pgferry_writes_is_not_readable_by_other_users() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    ferry.sender(&["complete"]).expect_code(0);
    let bundle = ferry.scratch.inbox.join(&ferry.pending()[0]);
    ferry.receiver(&["load"]).expect_code(0);
    let bundle = ferry
        .scratch
        .inbox
        .join("applied")
        .join(bundle.file_name().unwrap());
    let mut files = vec![bundle];
    files.extend(walk(&ferry.scratch.path("sender-state")));
    files.extend(walk(&ferry.scratch.path("receiver-state")));
    for file in files {
        if file.extension().is_some_and(|e| e == "lock") {
            continue; // empty lock files hold nothing
        }
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {:o}",
            file.display(),
            mode & 0o777
        );
    }
}

/// Runs `program` as the unprivileged test user.
fn run_unprivileged(program: &str, config: &std::path::Path, args: &[&str]) -> Run {
    let user = Env::get().var("PG_OS_USER");
    let out = Command::new("runuser")
        .args(["-u", user, "--"])
        .arg(bin(program))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("PGFERRY_LOG")
        .output()
        .unwrap();
    Run::from(out)
}

#[test]
fn nothing_requires_root_a_round_trip_as_an_unprivileged_user() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    let user = Env::get().var("PG_OS_USER");
    // A home of its own: the scratch dir belongs to root.
    let home = tempfile::Builder::new()
        .prefix("pgferry-unprivileged-")
        .tempdir()
        .unwrap();
    let chown = |path: &std::path::Path| {
        assert!(Command::new("chown")
            .args(["-R", user])
            .arg(path)
            .status()
            .unwrap()
            .success());
    };
    let key = home.path().join("id_ed25519");
    std::fs::copy(Env::get().var("SSH_KEY"), &key).unwrap();
    let known_hosts = home.path().join("known_hosts");
    std::fs::copy(Env::get().var("SSH_KNOWN_HOSTS"), &known_hosts).unwrap();
    let mut configs = Vec::new();
    for (name, config) in [
        ("sender.toml", &ferry.sender_config),
        ("receiver.toml", &ferry.receiver_config),
    ] {
        let text = std::fs::read_to_string(config)
            .unwrap()
            .replace(Env::get().var("SSH_KEY"), key.to_str().unwrap())
            .replace(
                Env::get().var("SSH_KNOWN_HOSTS"),
                known_hosts.to_str().unwrap(),
            )
            .replace(
                ferry.scratch.dir.path().to_str().unwrap(),
                home.path().to_str().unwrap(),
            );
        let path = home.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        configs.push(path);
    }
    // Made as an operator would (`install -d`) before the first check: check creates nothing.
    std::fs::create_dir(home.path().join("sender-state")).unwrap();
    chown(home.path());
    run_unprivileged("sender", &configs[0], &["check"]).expect_code(0);
    run_unprivileged("sender", &configs[0], &["complete"]).expect_code(0);
    ferry.source.sql(r#"UPDATE "AndroidRequests_report" SET message = 'changed', "timeStamp" = now() WHERE id = 3"#);
    run_unprivileged("sender", &configs[0], &["partial"]).expect_code(0);
    run_unprivileged("receiver", &configs[1], &["load"]).expect_code(0);
    run_unprivileged("receiver", &configs[1], &["status"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
    assert_eq!(ferry.ledger().len(), 2);
    for file in walk(&home.path().join("sender-state")) {
        if file.extension().is_some_and(|e| e == "lock") {
            continue;
        }
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} has mode {:o}",
            file.display(),
            mode & 0o777
        );
    }
}
