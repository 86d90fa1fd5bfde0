//! `sender check-remote`: proves, one timed step at a time, that bundles can reach the
//! receiver's inbox or the object store, and names the first step that does not work.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use pgferry::cause::{self, Cause};
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::report::{Report, Status};
use pgferry::settings::sender::{Remote, SftpRemote};
use pgferry::settings::store::S3Settings;
use pgferry::settings::{SenderSettings, Size};
use pgferry::sftp::{self, Connection};
use pgferry::store::{S3Store, Store};

/// Under this much free space in the inbox the check warns: a bundle of a real database is
/// easily this big, so the operator hears of it before uploads start failing on a full disk.
pub const MIN_FREE: Size = Size(1 << 30);

pub fn run(config: &Path, options: &Options) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let jobs = crate::metrics::jobs(&settings, options);
    jobs.run("check-remote", || check_remote(&settings))?;
    Ok(Exit::Done)
}

/// Runs every step in order, one report line each, and stops at the first failure: later
/// steps need the earlier ones. A low or unknown free space is not a failure.
pub fn check_remote(settings: &SenderSettings) -> anyhow::Result<()> {
    let mut report = Report::new();
    let result = steps(&mut report, &settings.remote);
    println!("{}", report.summary());
    result
}

fn steps(report: &mut Report, remote: &Remote) -> anyhow::Result<()> {
    match remote {
        Remote::Sftp(sftp) => sftp_steps(report, sftp),
        Remote::S3(s3) => s3_steps(report, &s3.store),
    }
}

/// Credentials, a list of the prefix, and a probe object written, read back and deleted.
fn s3_steps(report: &mut Report, settings: &S3Settings) -> anyhow::Result<()> {
    let store = step(
        report,
        "credentials",
        || S3Store::open(settings),
        |store| format!("from {}", store.credentials_source),
    )?;
    step(
        report,
        "list",
        || store.list(),
        |listed| format!("{} bundles under {}", listed.len(), store.label()),
    )?;
    step(
        report,
        "probe object",
        || store.probe(),
        |key| format!("wrote, read back and deleted {key}"),
    )?;
    Ok(())
}

fn sftp_steps(report: &mut Report, remote: &SftpRemote) -> anyhow::Result<()> {
    let address = format!("{}:{}", remote.host, remote.port);
    let tcp = step(
        report,
        "tcp",
        || sftp::open_tcp(remote),
        |_| format!("connected to {address}"),
    )?;
    let session = step(
        report,
        "ssh handshake",
        || sftp::handshake(remote, tcp),
        |s| format!("negotiated with {}", s.banner().unwrap_or("the server")),
    )?;
    let fingerprint = session.fingerprint();
    let known_hosts = remote.known_hosts.display();
    let session = step(
        report,
        "host key",
        || session.check_host_key(remote),
        |_| format!("checked {fingerprint} against {known_hosts}"),
    )?;
    let session = step(
        report,
        "key auth",
        || session.authenticate(remote),
        |_| {
            format!(
                "logged in as {} with key {}",
                remote.user,
                remote.private_key.display()
            )
        },
    )?;
    let (connection, _created) = step(
        report,
        "inbox",
        || {
            let connection = session.start_sftp(remote)?;
            let created = open_inbox(&connection)?;
            Ok((connection, created))
        },
        |(_, created)| {
            let verb = if *created { "created" } else { "opened" };
            format!("{verb} {} over SFTP", remote.dir)
        },
    )?;
    step(
        report,
        "probe file",
        || connection.probe(),
        |path| format!("wrote, read back and deleted {path}"),
    )?;
    free_space(report, &connection);
    Ok(())
}

/// Makes the inbox when missing; returns whether it had to. A file in its place is an
/// error here rather than a puzzling one at the probe.
fn open_inbox(connection: &Connection) -> anyhow::Result<bool> {
    let dir = Path::new(&connection.dir);
    let existed = match connection.sftp.stat(dir) {
        Ok(stat) if stat.is_dir() => true,
        Ok(_) => bail!(
            "{} on {} is not a directory",
            connection.dir,
            connection.label
        ),
        Err(_) => false,
    };
    connection
        .make_dir()
        .with_context(|| format!("make the inbox {} on {}", connection.dir, connection.label))?;
    Ok(!existed)
}

/// Runs one step and reports it with its duration: `ok` and what `describe` says of the
/// result, or `FAIL` and the error, which then ends the check.
fn step<T>(
    report: &mut Report,
    name: &str,
    run: impl FnOnce() -> anyhow::Result<T>,
    describe: impl FnOnce(&T) -> String,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let result = run();
    let ms = started.elapsed().as_millis();
    match result {
        Ok(value) => {
            report.ok(name, format!("{} in {ms} ms", describe(&value)));
            Ok(value)
        }
        Err(err) => {
            // One line per step: a multi-line error (its `hint:`) is joined with "; ".
            let text = format!("{err:#}").replace('\n', "; ");
            report.fail(name, format!("after {ms} ms: {text}"));
            // Every step is about the link, unless the step knows better (host key, key).
            let err = match Cause::of(&err) {
                Some(_) => err,
                None => cause::tag(err, Cause::Link),
            };
            Err(err.context(format!("check-remote failed at step {name}")))
        }
    }
}

fn free_space(report: &mut Report, connection: &Connection) {
    let started = Instant::now();
    let available = connection.free_space().map(Size);
    let ms = started.elapsed().as_millis();
    let (status, detail) = judge_free_space(available, &connection.dir, ms);
    report.add(status, "free space", detail);
}

/// Enough room is `ok`, too little a warning, and unknown is `ok`: an SFTP-only account
/// is a normal setup, not a fault.
fn judge_free_space(available: Option<Size>, dir: &str, ms: u128) -> (Status, String) {
    match available {
        Some(size) if size.0 >= MIN_FREE.0 => (
            Status::Ok,
            format!("{size} available in {dir}; asked in {ms} ms"),
        ),
        Some(size) => (
            Status::Warn,
            format!("only {size} available in {dir} (under {MIN_FREE}; asked in {ms} ms): uploads fail once it is full; hint: make room on the receiver or shorten its [retention]"),
        ),
        None => (
            Status::Ok,
            format!("unknown (the server does not allow df); asked in {ms} ms"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_above_the_threshold_is_ok() {
        assert_eq!(
            judge_free_space(Some(Size(5 << 30)), "/in", 3),
            (
                Status::Ok,
                "5.0 GiB available in /in; asked in 3 ms".to_string()
            )
        );
    }

    #[test]
    fn free_space_under_the_threshold_warns() {
        assert_eq!(
            judge_free_space(Some(Size(512 << 20)), "/in", 3),
            (Status::Warn, "only 512.0 MiB available in /in (under 1.0 GiB; asked in 3 ms): uploads fail once it is full; hint: make room on the receiver or shorten its [retention]".to_string())
        );
    }

    #[test]
    fn unknown_free_space_is_not_a_failure() {
        assert_eq!(
            judge_free_space(None, "/in", 3),
            (
                Status::Ok,
                "unknown (the server does not allow df); asked in 3 ms".to_string()
            )
        );
    }
}
