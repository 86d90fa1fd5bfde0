//! `sender check-remote` against the real sshd: every step passes on a working remote, and
//! each way of breaking the remote fails at the step that names it, with nothing after it.

use std::path::PathBuf;

use crate::ferry::Ferry;
use crate::util::*;

/// A ferry whose `[remote]` is the test sshd; check-remote reads nothing else.
fn ferry() -> Ferry {
    Ferry::new("CREATE TABLE t (id int PRIMARY KEY)", r#"["t"]"#)
}

/// A copy of the sender config with `from` (part of the `[remote]` section) replaced.
fn remote_config(ferry: &Ferry, from: &str, to: &str) -> PathBuf {
    let text = std::fs::read_to_string(&ferry.sender_config).unwrap();
    assert!(text.contains(from), "no {from:?} in {text}");
    ferry
        .scratch
        .write("sender-remote.toml", &text.replace(from, to))
}

fn check_remote(config: &std::path::Path) -> Run {
    run_config("sender", config, &["check-remote"])
}

/// `line` with every duration written as `N ms`, so it can be compared exactly.
fn timeless(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (index, word) in words.iter().enumerate() {
        let number = !word.is_empty() && word.chars().all(|c| c.is_ascii_digit());
        let before_ms = words
            .get(index + 1)
            .is_some_and(|next| next.starts_with("ms"));
        out.push(if number && before_ms { "N" } else { word });
    }
    out.join(" ")
}

/// `user@host:port` of the test sshd, as messages name it.
fn label(port: &str) -> String {
    let env = Env::get();
    format!("{}@{}:{port}", env.var("SSH_USER"), env.var("SSH_HOST"))
}

/// A failed check: exit 1, the FAIL line is the last step, the summary counts it, and the
/// error on stderr names the step.
fn assert_failed_at(run: &Run, step: &str, oks: usize) {
    run.expect_code(1);
    let last_step = run.stdout.lines().rev().nth(1).unwrap_or_default();
    assert!(
        last_step.starts_with(&format!("FAIL {step}: ")),
        "FAIL {step} is not the last step in\n{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some(format!("check: {oks} ok, 0 warnings, 1 failed").as_str())
    );
    let expected = format!("error: check-remote failed at step {step}: ");
    assert!(
        run.stderr.contains(&expected),
        "expected {expected:?} in\n{}",
        run.stderr
    );
}

#[test]
fn check_remote_passes_every_step_against_the_real_sshd() {
    let ferry = ferry();
    let env = Env::get();
    let inbox = ferry.scratch.inbox.display().to_string();
    let run = ferry.sender(&["check-remote"]);
    run.expect_code(0);
    assert_eq!(
        timeless(run.line("ok   tcp:")),
        format!(
            "ok   tcp: connected to {}:{} in N ms",
            env.var("SSH_HOST"),
            env.var("SSH_PORT")
        )
    );
    assert!(run
        .line("ok   ssh handshake:")
        .starts_with("ok   ssh handshake: negotiated with SSH-2.0-OpenSSH_"));
    assert_eq!(
        timeless(run.line("ok   host key:")),
        format!(
            "ok   host key: checked {} against {} in N ms",
            fingerprint(env.var("SSH_HOST_PUBKEY")),
            env.var("SSH_KNOWN_HOSTS")
        )
    );
    assert_eq!(
        timeless(run.line("ok   key auth:")),
        format!(
            "ok   key auth: logged in as {} with key {} in N ms",
            env.var("SSH_USER"),
            env.var("SSH_KEY")
        )
    );
    assert_eq!(
        timeless(run.line("ok   inbox:")),
        format!("ok   inbox: created {inbox} over SFTP in N ms")
    );
    let probe = timeless(run.line("ok   probe file:"));
    let probe_prefix =
        format!("ok   probe file: wrote, read back and deleted {inbox}/.pgferry-probe-");
    assert!(
        probe.starts_with(&probe_prefix) && probe.ends_with(".part in N ms"),
        "{probe}"
    );
    let free = timeless(run.line("ok   free space:"));
    assert!(
        free.ends_with(&format!(" available in {inbox}; asked in N ms")),
        "{free}"
    );
    assert_eq!(
        run.stdout.lines().last(),
        Some("check: 7 ok, 0 warnings, 0 failed")
    );
    let left: Vec<_> = std::fs::read_dir(&ferry.scratch.inbox).unwrap().collect();
    assert!(left.is_empty(), "the probe was left behind: {left:?}");

    let again = ferry.sender(&["check-remote"]);
    again.expect_code(0);
    assert_eq!(
        timeless(again.line("ok   inbox:")),
        format!("ok   inbox: opened {inbox} over SFTP in N ms")
    );
}

#[test]
fn check_remote_fails_at_tcp_when_sshd_is_not_listening() {
    let ferry = ferry();
    let ssh_port = Env::get().var("SSH_PORT");
    let port = free_port().to_string();
    let config = remote_config(
        &ferry,
        &format!("port = {ssh_port}\nuser"),
        &format!("port = {port}\nuser"),
    );
    let run = check_remote(&config);
    assert_failed_at(&run, "tcp", 0);
    assert_eq!(
        timeless(run.line("FAIL tcp:")),
        format!(
            "FAIL tcp: after N ms: connect to {}: Connection refused (os error 111)",
            label(&port)
        )
    );
    assert!(
        run.stderr
            .contains("check-remote failed at step tcp: connect to "),
        "{}",
        run.stderr
    );
}

#[test]
fn check_remote_fails_at_key_auth_with_a_key_the_server_does_not_know() {
    let ferry = ferry();
    let env = Env::get();
    let wrong_key = format!("{}/sshd/host_ed25519", env.var("ENV_DIR"));
    let config = remote_config(
        &ferry,
        &format!("private_key = \"{}\"", env.var("SSH_KEY")),
        &format!("private_key = \"{wrong_key}\""),
    );
    let run = check_remote(&config);
    assert_failed_at(&run, "key auth", 3);
    run.line("ok   host key:");
    assert_eq!(
        timeless(run.line("FAIL key auth:")),
        format!(
            "FAIL key auth: after N ms: authenticate to {} with key {wrong_key}: [Session(-18)] Username/PublicKey combination invalid",
            label(env.var("SSH_PORT"))
        )
    );
    assert!(!ferry.scratch.inbox.exists(), "the inbox was touched");
}

#[test]
fn check_remote_fails_at_host_key_when_known_hosts_does_not_list_it() {
    let ferry = ferry();
    let env = Env::get();
    let empty = ferry.scratch.write("empty_known_hosts", "");
    let empty = empty.display().to_string();
    let config = remote_config(
        &ferry,
        &format!("known_hosts = \"{}\"", env.var("SSH_KNOWN_HOSTS")),
        &format!("known_hosts = \"{empty}\""),
    );
    let run = check_remote(&config);
    assert_failed_at(&run, "host key", 2);
    let line = run.line("FAIL host key:");
    assert!(line.contains("SHA256:"), "{line}");
    assert_eq!(
        timeless(line),
        format!(
            "FAIL host key: after N ms: host key of {host}:{port} ({fp}) is not listed in {empty}; nothing was sent; hint: if the server's key really is this one, add it with: ssh-keyscan -p {port} {host} >> {empty}",
            host = env.var("SSH_HOST"),
            port = env.var("SSH_PORT"),
            fp = fingerprint(env.var("SSH_HOST_PUBKEY")),
        )
    );
    assert!(!ferry.scratch.inbox.exists(), "the inbox was touched");
}

#[test]
fn check_remote_fails_at_inbox_when_the_user_may_not_create_it() {
    let ferry = ferry();
    let env = Env::get();
    let inbox = ferry.scratch.inbox.display().to_string();
    let config = remote_config(
        &ferry,
        &format!("dir = \"{inbox}\""),
        "dir = \"/pgferry-not-allowed/inbox\"",
    );
    let run = check_remote(&config);
    assert_failed_at(&run, "inbox", 4);
    let label = label(env.var("SSH_PORT"));
    assert_eq!(
        timeless(run.line("FAIL inbox:")),
        format!(
            "FAIL inbox: after N ms: make the inbox /pgferry-not-allowed/inbox on {label}: create directory /pgferry-not-allowed on {label}: [SFTP(3)] permission denied"
        )
    );
    assert!(!std::path::Path::new("/pgferry-not-allowed").exists());
}
