//! Issue 18, part 2: `sender complete` and `receiver load` show their progress to a person
//! at a terminal, and nothing of it under cron, systemd or a pipe. The terminal is a real
//! pseudo-terminal, made by `script(1)`.

use std::process::Command;

use crate::ferry::*;
use crate::util::*;

/// Runs `program -c config args` on a pseudo-terminal; returns what the terminal showed.
fn on_a_terminal(program: &str, config: &std::path::Path, args: &[&str]) -> String {
    let line = format!(
        "{} -c {} {}",
        bin(program).display(),
        config.display(),
        args.join(" ")
    );
    let out = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{line} failed on a terminal:\n{shown}"
    );
    shown
}

#[test]
fn progress_is_drawn_on_a_terminal_and_never_without_one() {
    let ferry = Ferry::new(REPORTS, REPORTS_TABLES);

    // Through pipes, as under cron or systemd: no progress at all.
    let piped = ferry.sender(&["complete"]);
    piped.expect_code(0);
    let load = ferry.receiver(&["load"]);
    load.expect_code(0);
    for run in [&piped, &load] {
        assert!(
            !run.stderr.contains(" rows in ") && !run.stderr.contains('\u{1b}'),
            "{}",
            run.stderr
        );
    }

    // On a terminal: the step, and how it ended.
    let sender = on_a_terminal("sender", &ferry.sender_config, &["complete"]);
    assert!(
        sender.contains("published pgferry-") && sender.contains(" rows in "),
        "{sender}"
    );
    let receiver = on_a_terminal("receiver", &ferry.receiver_config, &["load"]);
    assert!(
        receiver.contains("applied pgferry-") && receiver.contains(" rows, 0 files, in "),
        "{receiver}"
    );

    // Not with -q, nor with JSON logs, even on a terminal.
    let quiet = on_a_terminal("sender", &ferry.sender_config, &["-q", "complete"]);
    assert!(!quiet.contains(" rows in "), "{quiet}");
    let json = on_a_terminal(
        "sender",
        &ferry.sender_config,
        &["--log-format", "json", "complete"],
    );
    assert!(!json.contains(" rows in "), "{json}");
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("\"AndroidRequests_report\"", "id");
}
