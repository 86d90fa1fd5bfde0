//! `receiver load [--once]`: applies every pending bundle, oldest first, each verified
//! before it is touched and loaded exactly once; then prunes.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::Utc;
use pgferry::bundle::reader::{Rejected, Verified, VerifyError};
use pgferry::bundle::{BundleName, Kind};
use pgferry::cause::{Cause, CauseExt};
use pgferry::checks::free_space;
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::last_bundles::{self, BundleFacts};
use pgferry::pg::Psql;
use pgferry::progress::Progress;
use pgferry::seal::OpenKeys;
use pgferry::settings::{ReceiverSettings, Size};

use crate::load::refused::Refused;
use crate::load::{apply, ledger, old_bundles, plan};
use crate::{blocked, fetch, hook, inbox, install, prune, supersede};

pub fn run(config: &Path, once: bool, options: &Options) -> anyhow::Result<Exit> {
    let settings = ReceiverSettings::read(config)?;
    let jobs = crate::metrics::jobs(&settings, options);
    jobs.run("load", || job(&settings, once, &options.progress))?;
    Ok(Exit::Done)
}

/// The job the command and the daemon run: load, then prune. `progress` shows each bundle's
/// load to a person at a terminal (the daemon has none).
pub fn job(settings: &ReceiverSettings, once: bool, progress: &Progress) -> anyhow::Result<()> {
    let result = load(settings, once, progress);
    if let Err(err) = prune::prune(settings, Utc::now()) {
        tracing::warn!(error = %format!("{err:#}"), "prune after load failed");
    }
    result.map(|_| ())
}

/// What happened to one bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The ledger had it: only files, hook and inbox bookkeeping were redone.
    AlreadyLoaded,
    /// A partial whose window ended before the snapshot of the last applied complete, or a
    /// complete older than it: that complete holds its rows already, so it is recorded as
    /// skipped, not loaded.
    Obsolete,
    /// Applied before, with newer bundles applied since: put back in the inbox by someone
    /// (only the newest applied bundle can still be pending after a crash). Moved to
    /// `failed/`, changing nothing: redoing its files and hook would roll them back.
    Replayed(VerifyError),
}

pub fn load(
    settings: &ReceiverSettings,
    once: bool,
    progress: &Progress,
) -> anyhow::Result<Vec<(BundleName, Outcome)>> {
    remove_install_leftovers(settings)?;
    let keys = OpenKeys::load(&settings.bundle)?;
    let fetched = fetch::fetch(settings, &keys)?;
    let pending = inbox::pending(&settings.inbox.dir)?;
    if pending.is_empty() {
        tracing::info!(inbox = %settings.inbox.dir.display(), "nothing to load");
    }
    let mut queue = supersede::start_at_newest_complete(settings, pending, fetched.start, &keys)?;
    queue.rejected.splice(0..0, fetched.rejected);
    let result = load_queue(settings, queue, &keys, once, progress);
    unblock_when_gone(settings)?;
    result
}

fn remove_install_leftovers(settings: &ReceiverSettings) -> anyhow::Result<()> {
    for set in &settings.files {
        let removed = install::remove_leftovers(&set.dir)?;
        if removed > 0 {
            tracing::info!(set = %set.name, removed, "removed temporary files of an interrupted install");
        }
    }
    Ok(())
}

/// Loads the queue in order; stops at the first bundle that fails to load, since the
/// bundles after it build on it.
fn load_queue(
    settings: &ReceiverSettings,
    queue: supersede::Queue,
    keys: &OpenKeys,
    once: bool,
    progress: &Progress,
) -> anyhow::Result<Vec<(BundleName, Outcome)>> {
    let limit = if once { 1 } else { usize::MAX };
    let mut start = queue.start;
    let mut rejected = queue.rejected;
    let mut done = Vec::new();
    for name in queue.bundles.into_iter().take(limit) {
        let path = settings.inbox.dir.join(name.file_name());
        let verified = match start.take() {
            Some((first, verified)) if first == name => Ok(verified),
            _ => inbox::verify_or_reject(&settings.inbox.dir, &name, keys)?,
        };
        let verified = match verified {
            Ok(verified) => verified,
            Err(reason) => {
                rejected.push(reason);
                continue;
            }
        };
        let outcome = load_one(settings, &name, &path, &verified, progress)
            .with_context(|| format!("load bundle {name}"))
            .or_else(|err| match Refused::find(&err) {
                Some(refused) => {
                    let reason = refused.to_string();
                    blocked::record(&settings.state.dir, &name.file_name(), &reason, Utc::now())?;
                    Err(blocked::blocking(err))
                }
                None => Err(err),
            })?;
        match outcome {
            Outcome::Replayed(refusal) => rejected.push(refusal),
            outcome => done.push((name, outcome)),
        }
    }
    if !rejected.is_empty() {
        return Err(Rejected {
            refusals: rejected,
            inbox: settings.inbox.dir.clone(),
        }
        .into());
    }
    Ok(done)
}

/// Clears the block once its bundle is no longer pending: applied, superseded, or moved
/// away by hand.
fn unblock_when_gone(settings: &ReceiverSettings) -> anyhow::Result<()> {
    let Some(block) = blocked::read(&settings.state.dir)? else {
        return Ok(());
    };
    let pending = inbox::pending(&settings.inbox.dir)?;
    if !pending.iter().any(|n| n.file_name() == block.bundle) {
        blocked::clear(&settings.state.dir)?;
        tracing::info!(bundle = %block.bundle, "the queue moves again: the bundle that blocked it is no longer pending");
    }
    Ok(())
}

fn load_one(
    settings: &ReceiverSettings,
    name: &BundleName,
    path: &Path,
    verified: &Verified,
    progress: &Progress,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let manifest = &verified.manifest;
    for set in &manifest.file_sets {
        if !settings.files.iter().any(|f| f.name == set.name) {
            bail!("the bundle carries file set {:?} but the receiver config has no [[files]] entry named so", set.name);
        }
    }
    let psql = Psql::new(settings.target.connection());
    let ledger::Lookup {
        bundle: recorded,
        last_complete,
        newest,
    } = ledger::lookup(&psql, &manifest.name)?;
    if let Some(refusal) = old_bundles::replayed(name, recorded.as_ref(), newest.as_ref()) {
        let moved = inbox::reject(&settings.inbox.dir, name, &refusal.to_string())?;
        tracing::error!(bundle = %name, moved_to = %moved.display(), "{refusal}");
        return Ok(Outcome::Replayed(refusal));
    }
    // Skipped or superseded before: never loaded, whatever brought it back.
    if recorded
        .as_ref()
        .is_some_and(|r| r.status != ledger::APPLIED)
    {
        inbox::move_to(&settings.inbox.dir, name, inbox::APPLIED)?;
        return Ok(Outcome::Obsolete);
    }
    let already = recorded.is_some();
    if !already && old_bundles::is_obsolete(manifest, last_complete.as_ref()) {
        ledger::record_skipped(&psql, manifest, &verified.sha256)?;
        inbox::move_to(&settings.inbox.dir, name, inbox::APPLIED)?;
        tracing::info!(bundle = %name, "skipped: a complete bundle applied since holds its rows");
        return Ok(Outcome::Obsolete);
    }
    check_free_space(settings, verified).cause(Cause::Disk)?;
    let plan = if already {
        plan::Plan::default()
    } else {
        match manifest.kind {
            Kind::Complete => plan::complete(&psql, manifest, settings.complete.on_schema_change)?,
            Kind::Partial => {
                plan::partial(&psql, manifest)?;
                plan::Plan::default()
            }
        }
    };
    let entry_bytes = manifest.entries.iter().map(|e| e.size).sum();
    progress.start(format!("load {name}"), Some(entry_bytes));
    let applied = apply::apply(settings, path, verified, &plan, already, progress)?;
    if let Some(post) = &settings.postprocess {
        hook::run(post, path, manifest).cause(Cause::Hook)?;
    }
    fail::fail_point!("receiver-after-hook", |_| pgferry::process::kill_self());
    inbox::move_to(&settings.inbox.dir, name, inbox::APPLIED)?;
    if !already {
        last_bundles::record(
            &settings.state.dir,
            name.kind,
            BundleFacts {
                bundle: name.file_name(),
                bytes: verified.size,
                rows: applied.loaded_rows,
            },
        )?;
    }
    progress.done(format!(
        "applied {name}: {} rows, {} files, in {:.1} s",
        applied.loaded_rows,
        applied.files.written,
        started.elapsed().as_secs_f64()
    ));
    tracing::info!(
        bundle = %name, rows = applied.loaded_rows, files = applied.files.written, kept = applied.files.kept,
        seconds = started.elapsed().as_secs_f64(), already_loaded = already, "applied"
    );
    Ok(if already {
        Outcome::AlreadyLoaded
    } else {
        Outcome::Applied
    })
}

/// What a file takes on disk at least: filesystems allocate whole blocks, so many small
/// files need far more room than their bytes.
const BLOCK: u64 = 4096;

/// Refuses to start when the bundle's files would leave less than `inbox.min_free` on any
/// filesystem. Sets that share a filesystem are added up: each may fit alone, not together.
fn check_free_space(settings: &ReceiverSettings, verified: &Verified) -> anyhow::Result<()> {
    // Per filesystem (device): a directory on it, the sets, the bytes they need.
    let mut needs: BTreeMap<u64, (&Path, Vec<&str>, u64)> = BTreeMap::new();
    for set in &verified.manifest.file_sets {
        let Some(target) = settings.files.iter().find(|f| f.name == set.name) else {
            continue;
        };
        let existing = target
            .dir
            .ancestors()
            .find(|p| p.exists())
            .unwrap_or(Path::new("/"));
        let device = std::fs::metadata(existing)
            .with_context(|| format!("stat {}", existing.display()))?
            .dev();
        let blocks = set.bytes.div_ceil(BLOCK).saturating_add(set.files);
        let need = needs.entry(device).or_insert((existing, Vec::new(), 0));
        need.1.push(&set.name);
        need.2 = need.2.saturating_add(blocks.saturating_mul(BLOCK));
    }
    let reserve = settings.inbox.min_free();
    for (dir, sets, bytes) in needs.into_values() {
        let free = free_space(dir)
            .with_context(|| format!("measure free space under {}", dir.display()))?;
        if free < bytes.saturating_add(reserve) {
            bail!(
                "not enough disk space for file set(s) {}: they need {} under {}, {} is free and {} must stay free (inbox.min_free); nothing was loaded\nhint: make room there or shorten [retention]; the bundle stays pending",
                sets.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", "),
                Size(bytes),
                dir.display(),
                Size(free),
                Size(reserve)
            );
        }
    }
    Ok(())
}
