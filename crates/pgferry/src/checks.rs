//! Check items both `sender check` and `receiver check` run: files, directories, free
//! space, PostgreSQL tools and the database.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::pg::psql::major_version;
use crate::pg::Psql;
use crate::process;
use crate::report::Report;

/// Warns when the config file is readable by other users: it names hosts, accounts and
/// where secrets live, and operators may add SMTP usernames.
pub fn config_permissions(report: &mut Report, path: &Path) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.permissions().mode() & 0o004 != 0 => report.warn(
            "config",
            format!(
                "{} is readable by other users (mode {:o}); hint: chmod o-r {}",
                path.display(),
                meta.permissions().mode() & 0o777,
                path.display()
            ),
        ),
        Ok(_) => report.ok("config", format!("{} parsed", path.display())),
        Err(err) => report.fail("config", format!("{}: {err}", path.display())),
    }
}

/// A directory pgferry must write into. A check only looks: a missing directory is a
/// failure with the command that makes it, never created here, because a check run as
/// root would leave root-owned directories the service user cannot write into. Only a
/// directory that exists is probed, with a file removed again at once.
pub fn dir_writable(report: &mut Report, subject: &str, dir: &Path) -> bool {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            report.fail(subject, format!("{} is not a directory", dir.display()));
            return false;
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            report.fail(
                subject,
                format!(
                    "{} does not exist; hint: create it as root with `install -d -o {} -m 750 {}`",
                    dir.display(),
                    owner_hint(),
                    dir.display()
                ),
            );
            return false;
        }
        Err(err) => {
            report.fail(subject, format!("cannot stat {}: {err}", dir.display()));
            return false;
        }
    }
    let probe = dir.join(format!(".pgferry-check-{}", std::process::id()));
    let result = std::fs::write(&probe, b"probe").and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => {
            report.ok(subject, format!("{} is writable", dir.display()));
            true
        }
        Err(err) => {
            report.fail(subject, format!("{} is not writable: {err}", dir.display()));
            false
        }
    }
}

/// Warns when the check runs as root: root writes anywhere, so the writability lines say
/// nothing about the account the jobs run as.
pub fn running_user(report: &mut Report) {
    if nix::unistd::Uid::current().is_root() {
        report.warn(
            "user",
            "running as root: the directory checks show root's rights, not the service user's; hint: run the check as the account the jobs run as (sudo -u USER ...)",
        );
    }
}

/// Who should own a directory the check found missing: the user running the check, unless
/// that is root, who is rarely the account the jobs run as.
fn owner_hint() -> String {
    let uid = nix::unistd::Uid::current();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) if !uid.is_root() => user.name,
        _ => "SERVICE_USER".to_string(),
    }
}

/// A directory pgferry reads files from.
pub fn dir_readable(report: &mut Report, subject: &str, dir: &Path) {
    match std::fs::read_dir(dir) {
        Ok(_) => report.ok(subject, format!("{} is readable", dir.display())),
        Err(err) => report.fail(subject, format!("{} is not readable: {err}", dir.display())),
    }
}

/// A file pgferry must read (a key, `known_hosts`).
pub fn file_readable(report: &mut Report, subject: &str, path: &Path) {
    match std::fs::read(path) {
        Ok(bytes) if bytes.is_empty() => {
            report.fail(subject, format!("{} is empty", path.display()))
        }
        Ok(_) => report.ok(subject, format!("{} is readable", path.display())),
        Err(err) => report.fail(
            subject,
            format!("{} is not readable: {err}", path.display()),
        ),
    }
}

/// Bytes available to an unprivileged user on the filesystem holding `path`.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    #[allow(clippy::unnecessary_cast)]
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// Reports the free space under `dir`, warning below `minimum` bytes.
pub fn free_space_item(report: &mut Report, subject: &str, dir: &Path, minimum: u64) {
    match free_space(dir) {
        Ok(free) if free < minimum => report.warn(
            subject,
            format!(
                "only {} free under {} (threshold {})",
                crate::settings::Size(free),
                dir.display(),
                crate::settings::Size(minimum)
            ),
        ),
        Ok(free) => report.ok(
            subject,
            format!(
                "{} free under {}",
                crate::settings::Size(free),
                dir.display()
            ),
        ),
        Err(err) => report.fail(
            subject,
            format!("cannot measure free space under {}: {err}", dir.display()),
        ),
    }
}

/// A PostgreSQL client tool on PATH; returns its major version.
pub fn pg_tool(report: &mut Report, name: &str) -> Option<u32> {
    let program = crate::pg::programs::resolve(name);
    match process::output(Command::new(program).arg("--version")) {
        Ok(out) => {
            let banner = String::from_utf8_lossy(&out).trim().to_string();
            match major_version(&banner) {
                Some(major) => {
                    report.ok(name, banner);
                    Some(major)
                }
                None => {
                    report.fail(name, format!("cannot read the version from {banner:?}"));
                    None
                }
            }
        }
        Err(err) => {
            report.fail(
                name,
                format!("{err}; hint: install the PostgreSQL client (postgresql-client)"),
            );
            None
        }
    }
}

/// Connects and returns the server's version number.
pub fn database(report: &mut Report, psql: &Psql) -> Option<u32> {
    let target = psql.connection.describe();
    match psql.server_version_num() {
        Ok(version) => {
            report.ok(
                "database",
                format!(
                    "{target} reachable, server version {}.{}",
                    version / 10000,
                    version % 10000
                ),
            );
            Some(version)
        }
        Err(err) => {
            report.fail("database", format!("cannot connect to {target}: {err:#}"));
            None
        }
    }
}

/// An S3-compatible store: where the credentials came from, that they may list the
/// bundles, and with `write` that they may publish and delete (a probe object under the
/// prefix). Each failure names the store's own error code.
pub fn s3_store(report: &mut Report, settings: &crate::settings::store::S3Settings, write: bool) {
    use crate::store::{S3Store, Store};
    let store = match S3Store::open(settings) {
        Ok(store) => store,
        Err(err) => {
            report.fail("s3 credentials", format!("{err:#}").replace('\n', "; "));
            return;
        }
    };
    report.ok(
        "s3 credentials",
        format!("from {}", store.credentials_source),
    );
    match store.list() {
        Ok(listed) => report.ok(
            "s3 list",
            format!("{} bundles under {}", listed.len(), store.label()),
        ),
        Err(err) => {
            report.fail("s3 list", format!("{err:#}").replace('\n', "; "));
            return;
        }
    }
    if write {
        match store.probe() {
            Ok(key) => report.ok("s3 write", format!("wrote, read back and deleted {key}")),
            Err(err) => report.fail("s3 write", format!("{err:#}").replace('\n', "; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn a_missing_directory_fails_with_the_command_that_makes_it_and_is_not_created() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("inbox/sub");
        let mut report = Report::new();
        report.quiet = true;
        assert!(!dir_writable(&mut report, "inbox", &dir));
        assert!(!dir.exists() && !dir.parent().unwrap().exists());
        let item = &report.items[0];
        assert_eq!(item.status, Status::Fail);
        assert_eq!(
            item.detail,
            format!(
                "{} does not exist; hint: create it as root with `install -d -o {} -m 750 {}`",
                dir.display(),
                owner_hint(),
                dir.display()
            )
        );
    }

    #[test]
    fn an_existing_directory_is_probed_and_left_as_it_was() {
        let scratch = tempfile::tempdir().unwrap();
        let mut report = Report::new();
        report.quiet = true;
        assert!(dir_writable(&mut report, "state dir", scratch.path()));
        assert_eq!(report.items[0].status, Status::Ok);
        assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_file_where_a_directory_should_be_fails() {
        let scratch = tempfile::NamedTempFile::new().unwrap();
        let mut report = Report::new();
        report.quiet = true;
        assert!(!dir_writable(&mut report, "inbox", scratch.path()));
        assert_eq!(
            report.items[0].detail,
            format!("{} is not a directory", scratch.path().display())
        );
    }
}
