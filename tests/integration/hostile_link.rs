//! A hostile link between the sender and the receiver's sshd: a session that hangs
//! mid-upload, and one that drops. Each test runs its own sshd (a copy of the shared one's
//! config on a free port), so freezing or killing its sessions touches no other test.
//! The upload fails within the configured timeout, naming the step; nothing is published;
//! the next run cleans the leftover and ships a whole bundle.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ferry::*;
use crate::util::*;

/// Enough rows (about 10 MB of text) that a dump, an upload and a load take a moment.
pub const BIG: &str = r#"
CREATE TABLE big (id integer PRIMARY KEY, payload text);
INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 100000) g;
"#;

pub const BIG_TABLES: &str = r#"["big"]"#;

// ---------------------------------------------------------------------------------------
// Processes, seen through /proc.

/// The parent pid and the command name of a process, from `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let ppid = text[close + 2..].split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// The processes whose parent is `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| stat(child).is_some_and(|(ppid, _)| ppid == pid))
        .collect()
}

/// Every process below `pid`, children first.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = children(pid);
    while let Some(next) = queue.pop() {
        found.push(next);
        queue.extend(children(next));
    }
    found
}

/// The children of `pid` running `program` (its command name).
pub fn children_named(pid: u32, program: &str) -> Vec<u32> {
    children(pid)
        .into_iter()
        .filter(|&child| stat(child).is_some_and(|(_, comm)| comm == program))
        .collect()
}

/// The command line of `pid`, arguments joined by spaces.
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

/// Sends `signal` (`STOP`, `CONT`, `KILL`) to `pid`; a process already gone is fine.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// `sender` or `receiver` started in the background, its stderr kept in a file.
pub struct Running {
    child: Child,
    stderr: PathBuf,
}

impl Running {
    pub fn start(program: &str, config: &Path, args: &[&str], scratch: &Scratch) -> Running {
        Running::start_with(program, config, args, scratch, &[])
    }

    /// The same, with `env` set.
    pub fn start_with(
        program: &str,
        config: &Path,
        args: &[&str],
        scratch: &Scratch,
        env: &[(&str, &str)],
    ) -> Running {
        let stderr = scratch.path(&format!("{}.stderr", unique(program)));
        let child = Command::new(bin(program))
            .envs(env.iter().copied())
            .arg("-c")
            .arg(config)
            .args(args)
            .env_remove("PGFERRY_CONFIG")
            .env_remove("PGFERRY_LOG")
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Running { child, stderr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `condition` for up to 60 s; fails the test, with the process's stderr, if it
    /// never holds or if the process exits first.
    pub fn wait_until(&mut self, mut condition: impl FnMut() -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !condition() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before {what}\n--- stderr\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- stderr\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, then reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits at most 60 s for the exit; a process still running then is killed and the
    /// test fails.
    pub fn finish(mut self) -> Run {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running after 60 s; killed\n--- stderr\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Asserts that `run` exited `code` and that its stderr contains `text`.
pub fn assert_failed(run: &Run, code: i32, text: &str) {
    run.expect_code(code);
    assert!(
        run.stderr.contains(text),
        "expected {text:?} in\n{}",
        run.stderr
    );
}

/// Bundles the receiver would load: published names, not the hidden `.…part` ones.
pub fn published(ferry: &Ferry) -> Vec<String> {
    ferry
        .pending()
        .into_iter()
        .filter(|n| n.starts_with("pgferry-") && n.ends_with(".tar.gz"))
        .collect()
}

/// Leftovers of interrupted uploads in the inbox.
pub fn leftovers(ferry: &Ferry) -> Vec<String> {
    ferry
        .pending()
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// A private sshd.

/// An sshd of this test alone; stopped with all its sessions when dropped, even when the
/// test panics.
struct Sshd {
    port: u16,
    pid_file: PathBuf,
    log: PathBuf,
    /// The client port of the one connection `start` made to see that it listens.
    probe_port: u16,
}

impl Sshd {
    fn start(scratch: &Scratch) -> Sshd {
        let env = Env::get();
        let port = free_port();
        let name = unique("sshd");
        let pid_file = scratch.path(&format!("{name}.pid"));
        let log = scratch.path(&format!("{name}.log"));
        let config: String = std::fs::read_to_string(env.var("SSHD_CONFIG"))
            .unwrap()
            .lines()
            .map(|line| {
                if line.starts_with("Port ") {
                    format!("Port {port}\n")
                } else if line.starts_with("PidFile ") {
                    format!("PidFile {}\n", pid_file.display())
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        let config_path = scratch.write(&format!("{name}.config"), &config);
        let status = Command::new("/usr/sbin/sshd")
            .arg("-f")
            .arg(&config_path)
            .arg("-E")
            .arg(&log)
            .status()
            .unwrap();
        assert!(status.success(), "sshd did not start: {status}");
        let mut sshd = Sshd {
            port,
            pid_file,
            log,
            probe_port: 0,
        };
        wait_for(
            || {
                std::fs::read_to_string(&sshd.pid_file)
                    .is_ok_and(|t| t.trim().parse::<u32>().is_ok())
            },
            "the private sshd's pid file",
        );
        let mut probe_port = 0;
        wait_for(
            || match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(stream) => {
                    probe_port = stream.local_addr().unwrap().port();
                    true
                }
                Err(_) => false,
            },
            "the private sshd to listen",
        );
        sshd.probe_port = probe_port;
        sshd
    }

    fn listener(&self) -> u32 {
        std::fs::read_to_string(&self.pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The processes serving connections: every descendant of the listener.
    fn sessions(&self) -> Vec<u32> {
        descendants(self.listener())
    }

    /// Sends `sig` to every session process (the listener keeps accepting).
    fn signal_sessions(&self, sig: &str) -> usize {
        let sessions = self.sessions();
        for &pid in &sessions {
            signal(pid, sig);
        }
        sessions.len()
    }

    /// A copy of the ferry's sender config that uploads through this sshd, with `timeout`.
    fn sender_config(&self, ferry: &Ferry, timeout: &str) -> PathBuf {
        let env = Env::get();
        let key = std::fs::read_to_string(env.var("SSH_HOST_PUBKEY")).unwrap();
        let key: Vec<&str> = key.split_whitespace().collect();
        let known_hosts = ferry.scratch.write(
            &format!("known_hosts_{}", self.port),
            &format!("[127.0.0.1]:{} {} {}\n", self.port, key[0], key[1]),
        );
        let text = std::fs::read_to_string(&ferry.sender_config).unwrap();
        let from_port = format!("port = {}\nuser", env.var("SSH_PORT"));
        let from_timeout = "timeout = \"20s\"\n";
        assert!(
            text.contains(&from_port) && text.contains(from_timeout),
            "{text}"
        );
        let text = text
            .replace(&from_port, &format!("port = {}\nuser", self.port))
            .replace(from_timeout, &format!("timeout = \"{timeout}\"\n"))
            .replace(env.var("SSH_KNOWN_HOSTS"), known_hosts.to_str().unwrap());
        ferry
            .scratch
            .write(&format!("sender-link-{}.toml", self.port), &text)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let Ok(listener) = std::fs::read_to_string(&self.pid_file) else {
            return;
        };
        let Ok(listener) = listener.trim().parse::<u32>() else {
            return;
        };
        let sessions = descendants(listener);
        signal(listener, "KILL");
        for pid in sessions {
            signal(pid, "KILL");
        }
        if std::thread::panicking() {
            eprintln!(
                "--- private sshd log\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The tests.

/// Starts `sender complete` with `config` while the test holds an ACCESS EXCLUSIVE lock
/// on the source table `big`, and returns once the job is held there: its upload's hidden
/// `.part` file is open in the inbox and every `pg_dump` it started (the data dump among
/// them) waits for that lock. Until [`HeldLock::release`] the job can neither send a byte
/// of data nor finish, however fast or slow the machine: a fault injected now lands in
/// the middle of the upload, every time.
pub fn start_held_upload(ferry: &Ferry, config: &Path) -> (Running, HeldLock) {
    let lock = ferry.source.hold_lock("big", "ACCESS EXCLUSIVE");
    let mut sender = Running::start("sender", config, &["complete"], &ferry.scratch);
    let pid = sender.pid();
    let inbox = ferry.scratch.inbox.clone();
    sender.wait_until(
        || {
            if !list_dir(&inbox).iter().any(|n| n.ends_with(".part")) {
                return false;
            }
            let dumps = children_named(pid, "pg_dump");
            if !dumps.iter().any(|&p| cmdline(p).contains("--data-only")) {
                return false;
            }
            // pg_dump locks its tables first; nothing else of the job takes a lock.
            let waiting = lock
                .waiters()
                .into_iter()
                .filter(|w| w.query.starts_with("LOCK TABLE"))
                .count();
            waiting == dumps.len()
        },
        "the upload to be open and every pg_dump of the job to wait for the test's lock",
    );
    (sender, lock)
}

/// The run after the fault: exit 0, the leftover gone, one whole bundle that loads equal.
fn assert_next_run_recovers(ferry: &Ferry, config: &Path) {
    let run = run_config("sender", config, &["complete"]);
    run.expect_code(0);
    assert_eq!(
        leftovers(ferry),
        Vec::<String>::new(),
        "a .part leftover remains"
    );
    assert_eq!(published(ferry).len(), 1, "{:?}", ferry.pending());
    ferry.receiver(&["load"]).expect_code(0);
    ferry.assert_same("big", "id");
    assert_eq!(ferry.ledger().len(), 1);
}

/// The name of the bundle an interrupted upload was making, from its `.…part` leftover.
fn interrupted_bundle(ferry: &Ferry) -> String {
    let left = leftovers(ferry);
    assert_eq!(
        left.len(),
        1,
        "expected one leftover: {:?}",
        ferry.pending()
    );
    left[0]
        .trim_start_matches('.')
        .trim_end_matches(".part")
        .to_string()
}

/// The start of the error of an upload through `sshd` that broke while making `bundle`.
fn make_bundle_error(ferry: &Ferry, sshd: &Sshd, bundle: &str) -> String {
    format!(
        "error: make bundle {bundle} in {}@127.0.0.1:{}:{}: ",
        Env::get().var("SSH_USER"),
        sshd.port,
        ferry.scratch.inbox.display()
    )
}

#[test]
fn a_link_that_hangs_mid_upload_fails_at_the_timeout_and_publishes_nothing() {
    let ferry = Ferry::new(BIG, BIG_TABLES);
    let sshd = Sshd::start(&ferry.scratch);
    let config = sshd.sender_config(&ferry, "3s");
    let (sender, lock) = start_held_upload(&ferry, &config);

    // The server stops answering, as when a link goes dead without a reset; then the
    // data comes.
    assert!(sshd.signal_sessions("STOP") > 0);
    lock.release();
    let run = sender.finish();
    let bundle = interrupted_bundle(&ferry);
    assert_failed(&run, 1, &make_bundle_error(&ferry, &sshd, &bundle));
    assert!(
        run.stderr.contains("Timed out waiting on socket"),
        "{}",
        run.stderr
    );
    assert_eq!(published(&ferry), Vec::<String>::new());
    assert_eq!(ferry.ledger(), Vec::<String>::new());

    // The stuck session is cleared; the listener still accepts.
    sshd.signal_sessions("CONT");
    sshd.signal_sessions("KILL");
    assert_next_run_recovers(&ferry, &config);
}

#[test]
fn a_link_that_hangs_mid_upload_fails_within_a_few_timeouts_not_one_per_cleanup_call() {
    let ferry = Ferry::new(BIG, BIG_TABLES);
    let sshd = Sshd::start(&ferry.scratch);
    let config = sshd.sender_config(&ferry, "3s");
    let (sender, lock) = start_held_upload(&ferry, &config);

    assert!(sshd.signal_sessions("STOP") > 0);
    let stopped = Instant::now();
    lock.release();
    let run = sender.finish();
    let took = stopped.elapsed();
    run.expect_code(1);
    // The clock runs from the stop, through the release of the dump and the first part of
    // data, and the kernel's socket buffers still take data after the stop, so the first
    // timeout starts a little late; what must not happen is one more timeout per cleanup
    // call on the dead session (that took 18-28 s). Not a speed target: a bound on hanging.
    assert!(
        took < Duration::from_secs(15),
        "a 3s timeout took {took:?} to fail the job\n{}",
        run.stderr
    );
}

#[test]
fn a_link_that_drops_mid_upload_fails_naming_the_upload_and_the_next_run_cleans_up() {
    let ferry = Ferry::new(BIG, BIG_TABLES);
    let sshd = Sshd::start(&ferry.scratch);
    let config = sshd.sender_config(&ferry, "3s");
    let (sender, lock) = start_held_upload(&ferry, &config);

    // The connection is cut: the server side of the session dies; then the data comes.
    assert!(sshd.signal_sessions("KILL") > 0);
    lock.release();
    let run = sender.finish();
    let bundle = interrupted_bundle(&ferry);
    assert_failed(&run, 1, &make_bundle_error(&ferry, &sshd, &bundle));
    assert_eq!(published(&ferry), Vec::<String>::new());
    assert_eq!(ferry.ledger(), Vec::<String>::new());

    assert_next_run_recovers(&ferry, &config);
}

#[test]
fn a_link_that_drops_mid_upload_is_reported_as_an_upload_failure_not_a_dump_failure() {
    let ferry = Ferry::new(BIG, BIG_TABLES);
    let sshd = Sshd::start(&ferry.scratch);
    let config = sshd.sender_config(&ferry, "3s");
    let (sender, lock) = start_held_upload(&ferry, &config);

    assert!(sshd.signal_sessions("KILL") > 0);
    lock.release();
    let run = sender.finish();
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            ": upload {}/.pgferry-",
            ferry.scratch.inbox.display()
        )) && run.stderr.contains(&format!(
            ".part to {}@127.0.0.1:",
            Env::get().var("SSH_USER")
        )),
        "the error does not name the upload that failed:\n{}",
        run.stderr
    );
}

/// Each job opens one SSH connection and authenticates once, however many SFTP calls it
/// makes (inbox, leftovers, upload, rename): a session per call would pay a handshake each.
#[test]
fn a_job_uses_one_ssh_session() {
    let ferry = Ferry::with(REPORTS, REPORTS_TABLES, REPORTS_PARTIAL, "");
    let sshd = Sshd::start(&ferry.scratch);
    let config = sshd.sender_config(&ferry, "20s");
    run_config("sender", &config, &["complete"]).expect_code(0);
    ferry
        .source
        .sql(r#"UPDATE "AndroidRequests_report" SET "timeStamp" = now()"#);
    run_config("sender", &config, &["partial"]).expect_code(0);
    assert_eq!(published(&ferry).len(), 2);
    let log = std::fs::read_to_string(&sshd.log).unwrap();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    // `Sshd::start` connects once to see that it listens, and hangs up before the
    // handshake; how sshd logs that end depends on whether its banner came first, so the
    // probe is told apart by its client port.
    let probe = format!(" port {} on ", sshd.probe_port);
    let connections = log
        .lines()
        .filter(|l| l.contains("Connection from") && !l.contains(&probe))
        .count();
    assert_eq!(connections, 2, "{log}");
    assert_eq!(count("Accepted publickey for"), 2, "{log}");
}
