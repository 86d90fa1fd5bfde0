//! Runs the `[postprocess]` command after a bundle is loaded, with the bundle described in
//! its environment and a time limit.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};
use pgferry::bundle::Manifest;
use pgferry::process::StderrTail;
use pgferry::settings::receiver::Postprocess;
use wait_timeout::ChildExt;

pub fn run(post: &Postprocess, bundle: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    let (start, end) = match manifest.window {
        Some(w) => (w.start.to_rfc3339(), w.end.to_rfc3339()),
        None => (String::new(), manifest.snapshot_time.to_rfc3339()),
    };
    let program = &post.command[0];
    let mut child = Command::new(program)
        .args(&post.command[1..])
        .env("PGFERRY_BUNDLE", bundle)
        .env("PGFERRY_KIND", manifest.kind.to_string())
        .env("PGFERRY_WINDOW_START", start)
        .env("PGFERRY_WINDOW_END", end)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout stops everything the hook started.
        .process_group(0)
        .spawn()
        .with_context(|| format!("start postprocess command {program:?}"))?;
    fail::fail_point!("receiver-during-hook", |_| pgferry::process::kill_self());
    let mut stdout = StderrTail::drain(child.stdout.take().context("no stdout pipe")?);
    let mut stderr = StderrTail::drain(child.stderr.take().context("no stderr pipe")?);
    let timeout = post.timeout.as_std();
    let status = match child
        .wait_timeout(timeout)
        .context("wait for the postprocess command")?
    {
        Some(status) => status,
        None => {
            kill_group(&mut child);
            stdout.finish();
            stderr.finish();
            bail!(
                "postprocess command {program:?} did not finish within {}; it was killed",
                post.timeout
            );
        }
    };
    let out = stdout.finish();
    let err = stderr.finish();
    if !status.success() {
        bail!(
            "postprocess command {program:?} failed ({status}): {}",
            err.trim()
        );
    }
    tracing::debug!(command = %program, stdout = %out.trim(), "postprocess finished");
    Ok(())
}

/// Kills the hook and every process it started, then reaps it.
fn kill_group(child: &mut Child) {
    let pgid = i32::try_from(child.id())
        .ok()
        .map(nix::unistd::Pid::from_raw);
    if let Some(pgid) = pgid {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}
