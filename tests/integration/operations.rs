//! Operations: failure and recovery emails through the real SMTP server, the daemons on
//! real schedules, the staleness alert, and `status --json`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::ferry::*;
use crate::util::*;

/// One message the SMTP server stored.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// The messages the test SMTP server stored for `to`, oldest first.
pub fn mails_to(to: &str) -> Vec<Mail> {
    let maildir = Env::get().var("SMTP_MAILDIR");
    let script = r#"
import json, mailbox, os, re, sys
box = sys.argv[1]
out = []
if os.path.isdir(os.path.join(box, "new")):
    for key, msg in mailbox.Maildir(box, create=False).items():
        if sys.argv[2] in (msg.get("To") or ""):
            body = msg.get_payload(decode=True).decode("utf-8", "replace")
            out.append({"subject": str(msg.get("Subject")), "body": body, "date": msg.get("Date"), "key": key})
# In the order the server received them: Maildir keys are "<sec>.M<usec>P<pid>Q<n>.<host>"
# with the microseconds unpadded, so they sort as numbers, not as text (two mails in one
# second would otherwise swap when their microseconds have different lengths).
def received(m):
    parts = re.match(r"(\d+)\.M(\d+)P(\d+)Q(\d+)", m["key"])
    return tuple(int(p) for p in parts.groups()) if parts else (0, 0, 0, 0)
out.sort(key=lambda m: (received(m), m["key"]))
print(json.dumps(out))
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, maildir, to])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    list.into_iter()
        .map(|m| Mail {
            subject: m["subject"].as_str().unwrap().to_string(),
            body: m["body"].as_str().unwrap().to_string(),
        })
        .collect()
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// Sends this ferry's alerts to an address of its own, and returns it.
pub fn own_mailbox(ferry: &Ferry) -> String {
    let address = format!("{}@viz.test", unique("admin"));
    for config in [&ferry.sender_config, &ferry.receiver_config] {
        let text = std::fs::read_to_string(config).unwrap();
        std::fs::write(
            config,
            text.replace(
                "to = [\"admins@viz.test\"]",
                &format!("to = [\"{address}\"]"),
            ),
        )
        .unwrap();
    }
    address
}

fn replace_in(config: &Path, from: &str, to: &str, name: &str, ferry: &Ferry) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    ferry.scratch.write(name, &text.replace(from, to))
}

#[test]
fn a_failing_job_alerts_once_and_its_recovery_once() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    let to = own_mailbox(&ferry);
    let broken = ferry.unreachable_sender_config();
    let first = run_config("sender", &broken, &["complete"]);
    first.expect_code(1);
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].subject,
        format!("[pgferry] FAILED: complete on {}", host())
    );
    let body = &mails[0].body;
    assert!(
        body.contains(&format!(
            "The pgferry job complete failed on {} at ",
            host()
        )),
        "{body}"
    );
    assert!(
        body.contains("Error, with its causes:\n  make bundle")
            || body.contains("Error, with its causes:\n  connect to"),
        "{body}"
    );
    assert!(body.contains("Connection refused"), "{body}");
    assert!(
        body.contains("What to check:\n  the network path to the receiver and its sshd"),
        "{body}"
    );
    assert!(
        body.contains("Last log lines of the run:\n") && body.contains("job started"),
        "{body}"
    );

    run_config("sender", &broken, &["complete"]).expect_code(1);
    assert_eq!(
        mails_to(&to).len(),
        1,
        "a second failure in a row sent another email"
    );

    ferry.sender(&["complete"]).expect_code(0);
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(
        mails[1].subject,
        format!("[pgferry] RECOVERED: complete on {}", host())
    );
    assert!(
        mails[1].body.contains("after 2 failed run(s)"),
        "{}",
        mails[1].body
    );

    ferry.sender(&["complete"]).expect_code(0);
    assert_eq!(mails_to(&to).len(), 2, "a plain success sent an email");
}

#[test]
fn with_the_smtp_server_down_the_job_result_is_unchanged_and_the_log_names_the_smtp_error() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    let smtp_port = Env::get().var("SMTP_PORT");
    let dead_port = free_port().to_string();
    let no_smtp = replace_in(
        &ferry.sender_config,
        &format!("smtp_port = {smtp_port}"),
        &format!("smtp_port = {dead_port}"),
        "sender-no-smtp.toml",
        &ferry,
    );
    let failing = ferry.unreachable_sender_config();
    let failing_no_smtp = replace_in(
        &failing,
        &format!("smtp_port = {smtp_port}"),
        &format!("smtp_port = {dead_port}"),
        "sender-failing-no-smtp.toml",
        &ferry,
    );
    let failed = run_config("sender", &failing_no_smtp, &["complete"]);
    failed.expect_code(1);
    assert!(
        failed.stderr.contains(&format!("could not send the alert email job=\"complete\" error=send the alert \"[pgferry] FAILED: complete on {}\" through SMTP server 127.0.0.1:{dead_port}", host())),
        "{}",
        failed.stderr
    );
    assert!(
        failed.stderr.contains("error: make bundle") || failed.stderr.contains("error: connect to"),
        "{}",
        failed.stderr
    );
    // The recovery email cannot go out either; the job still succeeds.
    run_config("sender", &no_smtp, &["complete"]).expect_code(0);
    assert_eq!(ferry.pending().len(), 1);
}

#[test]
fn no_alert_keeps_a_manual_run_quiet() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    let to = own_mailbox(&ferry);
    let broken = ferry.unreachable_sender_config();
    let run = run_config("sender", &broken, &["complete", "--no-alert"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("alerts are off (--no-alert); not sending"),
        "{}",
        run.stderr
    );
    assert_eq!(mails_to(&to).len(), 0);
}

/// A daemon process whose log goes to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(program: &str, config: &Path, scratch: &Scratch) -> Daemon {
        let log = scratch.path(&format!("{program}-daemon.log"));
        let child = Command::new(bin(program))
            .args(["-c", config.to_str().unwrap(), "run"])
            .env_remove("PGFERRY_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let daemon = Daemon { child, log };
        wait_for(
            || daemon.log().contains("daemon started"),
            "the daemon to start",
        );
        daemon
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Sends SIGTERM and returns at once.
    fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit; the exit code and the log.
    fn wait(mut self) -> (i32, String) {
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, self.log())
    }

    /// SIGTERM, then the exit code.
    fn terminate(self) -> (i32, String) {
        self.signal_term();
        self.wait()
    }
}

impl Drop for Daemon {
    /// A test that failed does not leave its daemon running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn every_second(config: &Path, keys: &[&str]) {
    let mut text = std::fs::read_to_string(config).unwrap();
    for key in keys {
        let start = text.find(&format!("\n{key} = \"")).unwrap() + 1;
        let end = start + text[start..].find('\n').unwrap();
        text.replace_range(start..end, &format!("{key} = \"* * * * * *\""));
    }
    std::fs::write(config, text).unwrap();
}

#[test]
fn the_sender_daemon_runs_its_jobs_on_schedule_and_exits_0_on_sigterm() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    every_second(&ferry.sender_config, &["partial"]);
    ferry.sender(&["complete"]).expect_code(0);
    let daemon = Daemon::start("sender", &ferry.sender_config, &ferry.scratch);
    wait_for(
        || ferry.pending().len() >= 3,
        "two partial bundles from the daemon",
    );
    let (code, log) = daemon.terminate();
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("job started job=\"partial\""), "{log}");
    assert!(log.contains("job finished job=\"partial\""), "{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(
        !log.contains("job started job=\"complete\""),
        "the yearly complete job ran: {log}"
    );
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}

#[test]
fn a_slow_job_never_overlaps_itself_and_sigterm_lets_it_finish() {
    let ferry = Ferry::with(
        REPORTS,
        REPORTS_TABLES,
        "",
        &format!(
            "[postprocess]\ncommand = [\"sh\", \"-c\", \"touch {{scratch}}/hook-started; {}; touch {{scratch}}/hook-done\"]\n",
            wait_for_gate("{scratch}/hook-gate")
        ),
    );
    every_second(&ferry.receiver_config, &["load"]);
    ferry.sender(&["complete"]).expect_code(0);
    let daemon = Daemon::start("receiver", &ferry.receiver_config, &ferry.scratch);
    let started = ferry.scratch.path("hook-started");
    // The load stays in its hook until the test opens the gate.
    wait_for(|| started.exists(), "the load to reach its slow hook");
    wait_for(
        || daemon.count("skipped: the previous run of this job is still running") >= 1,
        "a tick to come while the load runs",
    );
    assert!(!ferry.scratch.path("hook-done").exists());
    daemon.signal_term();
    wait_for(
        || daemon.log().contains("waiting for running jobs to finish"),
        "the daemon to wait for the running load after SIGTERM",
    );
    std::fs::write(ferry.scratch.path("hook-gate"), "").unwrap();
    let (code, log) = daemon.wait();
    assert_eq!(code, 0, "{log}");
    assert!(
        ferry.scratch.path("hook-done").exists(),
        "SIGTERM cut the running job short: {log}"
    );
    assert_eq!(ferry.inbox_sub("applied").len(), 1, "{log}");
    assert_eq!(ferry.ledger().len(), 1);
    // Never two runs of load at once: starts and ends alternate.
    let mut running = false;
    for line in log.lines() {
        if line.contains("job started job=\"load\"") {
            assert!(!running, "load started while it was running:\n{log}");
            running = true;
        } else if line.contains("job=\"load\"")
            && (line.contains("job finished") || line.contains("job failed"))
        {
            running = false;
        }
    }
    assert!(log.contains("waiting for running jobs to finish"), "{log}");
}

#[test]
fn the_staleness_alert_fires_once_when_nothing_was_applied_for_stale_after() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    let to = own_mailbox(&ferry);
    every_second(&ferry.receiver_config, &["load"]);
    // Time is an input: the ledger says the last bundle was applied two hours ago.
    ferry.target.sql(
        "CREATE SCHEMA pgferry;
         CREATE TABLE pgferry.ledger (bundle text PRIMARY KEY, kind text NOT NULL, sha256 text NOT NULL, snapshot_time timestamptz NOT NULL, window_start timestamptz, window_end timestamptz, status text NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp());
         INSERT INTO pgferry.ledger VALUES ('pgferry-20260101T000000.000000Z-complete.tar.gz', 'complete', 'x', now() - interval '2 hours 1 minute', NULL, NULL, 'applied', now() - interval '2 hours');",
    );
    let daemon = Daemon::start("receiver", &ferry.receiver_config, &ferry.scratch);
    wait_for(|| !mails_to(&to).is_empty(), "the staleness alert");
    wait_for(
        || daemon.count("job failed job=\"staleness\"") >= 3,
        "two more staleness checks",
    );
    let (code, log) = daemon.terminate();
    assert_eq!(code, 0, "{log}");
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].subject,
        format!("[pgferry] FAILED: staleness on {}", host())
    );
    assert!(
        mails[0].body.contains("no bundle has been applied for 2h"),
        "{}",
        mails[0].body
    );
    assert!(
        mails[0]
            .body
            .contains("longer than schedule.stale_after (30m)"),
        "{}",
        mails[0].body
    );
}

#[test]
fn status_json_has_the_documented_fields_on_both_sides() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    ferry.ship();
    let sender = ferry.sender(&["status", "--json"]);
    sender.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&sender.stdout).unwrap();
    let jobs = status["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|j| j["job"].as_str().unwrap()).collect();
    assert_eq!(names, ["complete", "partial", "check-remote"]);
    assert!(jobs[0]["last_success"].is_string());
    assert_eq!(jobs[0]["consecutive_failures"], 0);
    assert!(jobs[1]["last_success"].is_null());
    assert!(status["high_water_mark"]["high_water_mark"].is_string());
    assert!(status["high_water_mark"]["bundle"]
        .as_str()
        .unwrap()
        .ends_with("-complete.tar.gz"));

    let receiver = ferry.receiver(&["status", "--json"]);
    receiver.expect_code(0);
    let status: serde_json::Value = serde_json::from_str(&receiver.stdout).unwrap();
    let names: Vec<&str> = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["load", "prune", "staleness"]);
    assert!(status["jobs"][0]["last_success"].is_string());
    assert_eq!(status["last_complete"]["status"], "applied");
    assert!(status["last_partial"].is_null());
    assert_eq!(status["pending"], serde_json::json!([]));
    assert_eq!(status["failed"], serde_json::json!([]));
    assert!(status["lag_seconds"].as_i64().unwrap() >= 0);

    let text = ferry.sender(&["status"]);
    text.expect_code(0);
    assert!(
        text.line("complete").contains(" ok; last success "),
        "{}",
        text.stdout
    );
    assert!(
        text.line("partial").contains(" never ran;"),
        "{}",
        text.stdout
    );
}

/// The `ExecStart=` of a unit file in `config/systemd/`, split into words.
fn exec_start(unit: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/systemd")
        .join(unit);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("no ExecStart in {}", path.display()));
    line.split_whitespace().map(str::to_string).collect()
}

#[test]
fn the_unit_files_start_the_daemons_as_written() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    for (unit, program, installed_config, config) in [
        (
            "pgferry-sender.service",
            "sender",
            "/etc/pgferry/sender.toml",
            &ferry.sender_config,
        ),
        (
            "pgferry-receiver.service",
            "receiver",
            "/etc/pgferry/receiver.toml",
            &ferry.receiver_config,
        ),
    ] {
        let words = exec_start(unit);
        assert_eq!(words[0], format!("/usr/local/bin/{program}"), "{unit}");
        assert!(
            words.contains(&installed_config.to_string()),
            "{unit}: {words:?}"
        );
        // The same command line, with this build's binary and this test's config.
        let args: Vec<String> = words[1..]
            .iter()
            .map(|w| {
                if w == installed_config {
                    config.display().to_string()
                } else {
                    w.clone()
                }
            })
            .collect();
        let log = ferry.scratch.path(&format!("{program}-unit.log"));
        let mut child = Command::new(bin(program))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        wait_for(
            || read().contains("daemon started") || child.try_wait().unwrap().is_some(),
            "the daemon to start",
        );
        assert!(read().contains("daemon started"), "{unit}: {}", read());
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert_eq!(child.wait().unwrap().code(), Some(0), "{unit}: {}", read());
    }
}

#[test]
fn a_failed_connectivity_check_alerts() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);
    let to = own_mailbox(&ferry);
    let run = run_config(
        "sender",
        &ferry.unreachable_sender_config(),
        &["check-remote"],
    );
    run.expect_code(1);
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(
        mails[0].subject,
        format!("[pgferry] FAILED: check-remote on {}", host())
    );
    assert!(
        mails[0].body.contains("  check-remote failed at step tcp"),
        "{}",
        mails[0].body
    );
    ferry.sender(&["check-remote"]).expect_code(0);
    let mails = mails_to(&to);
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(
        mails[1].subject,
        format!("[pgferry] RECOVERED: check-remote on {}", host())
    );
}
