//! Helpers that make each test read like prose: the shared test environment started by
//! `scripts/testenv.sh`, throwaway databases and directories, config files, and running
//! the real `sender` and `receiver` binaries.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The servers `scripts/testenv.sh up` started, read from its `env` file.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn get() -> &'static Env {
        static ENV: OnceLock<Env> = OnceLock::new();
        ENV.get_or_init(|| {
            let dir = std::env::var("PGFERRY_TESTENV").unwrap_or_else(|_| "/tmp/pgferry-testenv".into());
            let file = Path::new(&dir).join("env");
            let text = std::fs::read_to_string(&file).unwrap_or_else(|err| {
                panic!("the test environment is not up ({}: {err}); run `scripts/testenv.sh up`, or the whole suite with `scripts/test.sh`", file.display())
            });
            let vars = text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            Env { vars }
        })
    }

    pub fn var(&self, key: &str) -> &str {
        self.vars
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from the test environment's env file"))
    }

    pub fn port(&self, key: &str) -> u16 {
        self.var(key).parse().unwrap()
    }
}

/// A name unique to this test process and call, safe as a database or directory name.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Which of the clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    Primary,
    Secondary,
    /// A primary with `wal_level = logical`, for logical decoding.
    Logical,
}

/// A database of its own for one test.
pub struct Db {
    pub name: String,
    pub port: u16,
}

impl Db {
    pub fn create(cluster: Cluster) -> Db {
        let env = Env::get();
        let port = match cluster {
            Cluster::Primary => env.port("PRIMARY_PORT"),
            Cluster::Secondary => env.port("SECONDARY_PORT"),
            Cluster::Logical => env.port("LOGICAL_PORT"),
        };
        let name = unique("t");
        let db = Db {
            name: name.clone(),
            port,
        };
        db.psql_in("postgres", &format!("CREATE DATABASE \"{name}\""));
        db
    }

    fn psql_in(&self, dbname: &str, sql: &str) -> String {
        self.psql_result(dbname, sql)
            .unwrap_or_else(|err| panic!("psql failed on {sql}: {err}"))
    }

    /// psql's unaligned output, or its stderr when the statement failed.
    fn psql_result(&self, dbname: &str, sql: &str) -> Result<String, String> {
        let env = Env::get();
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                env.var("PG_HOST"),
                "-U",
                env.var("PG_USER"),
            ])
            .args(["-p", &self.port.to_string(), "-d", dbname, "-c", sql])
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string())
    }

    /// Runs SQL that may fail: its output, or psql's error.
    pub fn sql_result(&self, sql: &str) -> Result<String, String> {
        self.psql_result(&self.name, sql)
    }

    /// Runs SQL in this database and returns psql's unaligned output.
    pub fn sql(&self, sql: &str) -> String {
        self.psql_in(&self.name, sql)
    }

    /// The `[source]`/`[target]` section body for this database.
    pub fn libpq_toml(&self) -> String {
        let env = Env::get();
        format!(
            "host = \"{}\"\nport = {}\nuser = \"{}\"\ndbname = \"{}\"\n",
            env.var("PG_HOST"),
            self.port,
            env.var("PG_USER"),
            self.name
        )
    }
}

/// A scratch directory for one test: configs, state, file sets, and its own inbox under
/// the SSH account's root.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub inbox: PathBuf,
}

impl Scratch {
    pub fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("pgferry-test-")
            .tempdir()
            .unwrap();
        let inbox = Path::new(Env::get().var("SSH_ROOT")).join(unique("inbox"));
        Scratch { dir, inbox }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

/// A sender config for `source`, uploading into `scratch.inbox` over the test sshd.
pub fn sender_toml(scratch: &Scratch, source: &Db, tables: &str, extra: &str) -> String {
    let env = Env::get();
    format!(
        r#"[source]
{libpq}tables = {tables}

[partial]
overlap = "2m"

{extra}
[remote]
host = "{ssh_host}"
port = {ssh_port}
user = "{ssh_user}"
private_key = "{key}"
known_hosts = "{known_hosts}"
dir = "{inbox}"
timeout = "20s"

[state]
dir = "{state}"

[alerts]
smtp_host = "{smtp_host}"
smtp_port = {smtp_port}
security = "none"
from = "pgferry@primary.test"
to = ["admins@viz.test"]

[schedule]
complete = "30 3 * * *"
partial = "*/5 * * * *"
check_remote = "0 * * * *"
"#,
        libpq = source.libpq_toml(),
        ssh_host = env.var("SSH_HOST"),
        ssh_port = env.var("SSH_PORT"),
        ssh_user = env.var("SSH_USER"),
        key = env.var("SSH_KEY"),
        known_hosts = env.var("SSH_KNOWN_HOSTS"),
        inbox = scratch.inbox.display(),
        state = scratch.path("sender-state").display(),
        smtp_host = env.var("SMTP_HOST"),
        smtp_port = env.var("SMTP_PORT"),
    )
}

/// A receiver config loading `scratch.inbox` into `target`.
pub fn receiver_toml(scratch: &Scratch, target: &Db, extra: &str) -> String {
    let env = Env::get();
    format!(
        r#"[target]
{libpq}
[inbox]
dir = "{inbox}"

{extra}
[retention]
complete = "4d"
partial = "1d"

[state]
dir = "{state}"

[alerts]
smtp_host = "{smtp_host}"
smtp_port = {smtp_port}
security = "none"
from = "pgferry@viz.test"
to = ["admins@viz.test"]

[schedule]
load = "*/5 * * * *"
prune = "15 4 * * *"
stale_after = "30m"
"#,
        libpq = target.libpq_toml(),
        inbox = scratch.inbox.display(),
        state = scratch.path("receiver-state").display(),
        smtp_host = env.var("SMTP_HOST"),
        smtp_port = env.var("SMTP_PORT"),
    )
}

/// Where cargo put the binaries: next to this test's own `deps` directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` first (scripts/test.sh does)",
        path.display()
    );
    path
}

/// The result of running one of the binaries.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The stdout line that starts with `prefix` (a check item).
    pub fn line(&self, prefix: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| {
                panic!(
                    "no line starting with {prefix:?} in\n{}\n--- stderr\n{}",
                    self.stdout, self.stderr
                )
            })
    }
}

/// Runs `sender` or `receiver` with `args`.
pub fn run(program: &str, args: &[&str]) -> Run {
    run_with(program, args, &[])
}

pub fn run_with(program: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin(program));
    cmd.args(args)
        .env_remove("PGFERRY_CONFIG")
        .env_remove("PGFERRY_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Run::from(cmd.output().unwrap())
}

/// Same, with `-c config` first.
pub fn run_config(program: &str, config: &Path, args: &[&str]) -> Run {
    let mut all = vec!["-c", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(program, &all)
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `condition` for up to 60 s; waiting for another process, not for a clock.
pub fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The `SHA256:...` fingerprint of a public key file, as `ssh-keygen -l` prints it.
pub fn fingerprint(pubkey: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f", pubkey])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().to_string()
}

/// A transaction of the test's own, in a `psql` it keeps open, holding a lock on one
/// table: a job that needs a conflicting lock waits at a known statement until the test
/// calls [`HeldLock::release`], however fast or slow the machine is. Dropped unreleased
/// (a test that panicked), it ends the session, which releases the lock.
pub struct HeldLock {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    db: Db,
    /// The backend pid of the holding session.
    pub pid: String,
    table: String,
}

/// A backend that waits for a [`HeldLock`].
#[derive(Debug, Clone)]
pub struct Waiter {
    pub pid: String,
    pub query: String,
    /// Its transaction began before the statement that waits: it is inside a transaction
    /// block that already ran other statements.
    pub in_transaction: bool,
}

impl Db {
    /// A `psql` the test keeps running and feeds through its stdin; its session shows as
    /// `application_name` in `pg_stat_activity`, so the test can watch what it does.
    pub fn kept_session(
        &self,
        application_name: &str,
    ) -> (std::process::Child, std::process::ChildStdin) {
        use std::process::Stdio;
        let env = Env::get();
        let mut child = Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", env.var("PG_HOST"), "-U", env.var("PG_USER")])
            .args(["-p", &self.port.to_string(), "-d", &self.name])
            .env("PGAPPNAME", application_name)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        (child, stdin)
    }

    /// Takes `LOCK TABLE table IN mode MODE` in a transaction of its own and returns once
    /// `pg_locks` shows the lock granted.
    pub fn hold_lock(&self, table: &str, mode: &str) -> HeldLock {
        use std::io::Write;
        let app = unique("pgferry_test_lock");
        let (mut child, mut stdin) = self.kept_session(&app);
        writeln!(stdin, "BEGIN;\nLOCK TABLE {table} IN {mode} MODE;").unwrap();
        stdin.flush().unwrap();
        // `ACCESS EXCLUSIVE` is `AccessExclusiveLock` in pg_locks.
        let lock_mode: String = mode
            .split_whitespace()
            .map(|w| w[..1].to_uppercase() + &w[1..].to_lowercase())
            .chain(["Lock".to_string()])
            .collect();
        let db = Db {
            name: self.name.clone(),
            port: self.port,
        };
        let granted = format!(
            "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
             WHERE a.application_name = '{app}' AND l.locktype = 'relation' \
             AND l.relation = to_regclass('{table}') AND l.mode = '{lock_mode}' AND l.granted"
        );
        let mut pid = String::new();
        wait_for(
            || {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut stderr) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut stderr, &mut err);
                    }
                    panic!("the psql holding the lock on {table} exited ({status}): {err}");
                }
                pid = db.sql(&granted);
                !pid.is_empty()
            },
            &format!("the test's {mode} lock on {table}"),
        );
        HeldLock {
            child,
            stdin: Some(stdin),
            db,
            pid,
            table: table.to_string(),
        }
    }
}

impl HeldLock {
    /// The backends of the database that wait for this lock, or for a lock queued
    /// behind it.
    pub fn waiters(&self) -> Vec<Waiter> {
        let rows = self.db.sql(&format!(
            "SELECT pid, (xact_start < query_start)::text, replace(replace(query, E'\\n', ' '), '|', ' ') \
             FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND {} = ANY (pg_blocking_pids(pid)) ORDER BY pid",
            self.pid
        ));
        rows.lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, '|');
                Some(Waiter {
                    pid: fields.next()?.to_string(),
                    in_transaction: fields.next()? == "true",
                    query: fields.next()?.to_string(),
                })
            })
            .collect()
    }

    /// Polls for up to 60 s until `condition` holds for the waiters, then returns them;
    /// fails the test, naming `what` and the last waiters seen, if it never does.
    pub fn wait_for_waiters(
        &self,
        mut condition: impl FnMut(&[Waiter]) -> bool,
        what: &str,
    ) -> Vec<Waiter> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let waiters = self.waiters();
            if condition(&waiters) {
                return waiters;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what} (waiting for the lock on {}: {waiters:?})",
                self.table
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Commits the holding transaction and waits for its psql to exit.
    pub fn release(mut self) {
        use std::io::Write;
        let mut stdin = self.stdin.take().unwrap();
        writeln!(stdin, "COMMIT;").unwrap();
        drop(stdin);
        let child = &mut self.child;
        let mut status = None;
        wait_for(
            || {
                status = child.try_wait().unwrap();
                status.is_some()
            },
            "the psql holding the lock to exit",
        );
        assert!(
            status.unwrap().success(),
            "the psql holding the lock on {} failed",
            self.table
        );
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A shell loop that returns once `gate` exists: a hook that holds its job until the test
/// opens the gate, not for a time that is only long enough. It gives up after about two
/// minutes, so a test that failed leaves no hook behind for long.
pub fn wait_for_gate(gate: &str) -> String {
    format!("n=0; until [ -e {gate} ] || [ $n -ge 2400 ]; do sleep 0.05; n=$((n+1)); done")
}

/// The cluster with `wal_level = logical` is shared by the tests that use it; the one test
/// that changes its settings (to make PostgreSQL invalidate a slot) has it alone.
static LOGICAL_CLUSTER: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// A test's share of the logical cluster: many at once, or one alone.
pub enum LogicalCluster {
    Shared(#[allow(dead_code)] std::sync::RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>),
}

impl LogicalCluster {
    pub fn shared() -> LogicalCluster {
        LogicalCluster::Shared(LOGICAL_CLUSTER.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn alone() -> LogicalCluster {
        LogicalCluster::Alone(LOGICAL_CLUSTER.write().unwrap_or_else(|e| e.into_inner()))
    }
}
