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

/// Which of the two clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cluster {
    Primary,
    Secondary,
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
        assert!(
            out.status.success(),
            "psql failed on {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
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
