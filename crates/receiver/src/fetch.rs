//! With `[inbox] kind = "s3"`: the poll of the store. It takes the bundles this receiver has
//! not taken yet into its work directory (`inbox.dir`), where the load finds them as if
//! they had been uploaded there. A receiver cannot move objects, so what it took is kept in
//! its state directory (`taken.json`), which plays the part of moving a bundle out of an
//! SFTP inbox: a bundle is taken once, whatever becomes of it (applied, superseded, or
//! refused and recorded in `failed/`).
//!
//! Like the SFTP inbox's supersede rule, a receiver that finds a complete bundle among the
//! new ones starts there: the older new ones are taken without being fetched. So a receiver
//! that joins, or fell behind past what the store keeps, starts from the newest complete.

use std::collections::BTreeSet;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use pgferry::bundle::reader::{Verified, VerifyError};
use pgferry::bundle::{BundleName, Kind};
use pgferry::cause::{self, Cause};
use pgferry::checks::free_space;
use pgferry::seal::OpenKeys;
use pgferry::settings::{ReceiverSettings, Size};
use pgferry::store::{S3Store, Store, Stored};
use serde::{Deserialize, Serialize};

use crate::inbox;

/// What one poll found out on the way, for the load that follows.
#[derive(Default)]
pub struct Fetched {
    /// The complete bundle the receiver starts at, verified already: the load does not
    /// read it through a second time.
    pub start: Option<(BundleName, Verified)>,
    /// Complete bundles that failed verification (moved to `failed/`), and why.
    pub rejected: Vec<VerifyError>,
}

/// The bundles a receiver took from one store; names the store no longer holds are
/// forgotten, so the list stays as long as the store's.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Taken {
    store: String,
    bundles: BTreeSet<String>,
}

fn taken_path(state_dir: &Path) -> PathBuf {
    state_dir.join("taken.json")
}

impl Taken {
    /// The list for `store`; one of another store (a changed config) does not count.
    fn read(state_dir: &Path, store: &str) -> anyhow::Result<Taken> {
        let path = taken_path(state_dir);
        let taken: Taken = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("read {}", path.display()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Taken::default(),
            Err(err) => return Err(err).with_context(|| format!("read {}", path.display())),
        };
        if taken.store == store {
            return Ok(taken);
        }
        Ok(Taken {
            store: store.to_string(),
            bundles: BTreeSet::new(),
        })
    }

    fn write(&self, state_dir: &Path) -> anyhow::Result<()> {
        pgferry::atomic_file::write(&taken_path(state_dir), &serde_json::to_vec_pretty(self)?)
    }
}

/// Polls the store when the inbox is one; a plain inbox directory is filled by the sender.
///
/// Like the supersede rule of an inbox, the newest new complete bundle that verifies is
/// where the receiver starts: the new bundles older than it are passed over. A damaged
/// complete passes over nothing: it is refused (moved to `failed/` with its reason) and the
/// next older one is tried.
pub fn fetch(settings: &ReceiverSettings, keys: &OpenKeys) -> anyhow::Result<Fetched> {
    let Some(store_settings) = &settings.inbox.store else {
        return Ok(Fetched::default());
    };
    let store = S3Store::open(store_settings)?;
    let dir = &settings.inbox.dir;
    remove_leftovers(dir)?;
    let listed = store.list()?;
    let state_dir = &settings.state.dir;
    let mut taken = Taken::read(state_dir, &store.label())?;
    let names: BTreeSet<String> = listed.iter().map(|s| s.name.file_name()).collect();
    taken.bundles.retain(|name| names.contains(name));
    taken.write(state_dir)?;
    let mut new: Vec<&Stored> = listed
        .iter()
        .filter(|s| !taken.bundles.contains(&s.name.file_name()))
        .collect();
    let mut done = Fetched::default();
    while let Some(index) = new.iter().rposition(|s| s.name.kind == Kind::Complete) {
        let complete = new.remove(index);
        take(&store, complete, settings, &mut taken)?;
        match inbox::verify_or_reject(dir, &complete.name, keys)? {
            Ok(verified) => {
                for older in new.drain(..index) {
                    tracing::info!(bundle = %older.name, store = %store.label(), "not fetched: a newer complete bundle is in the store");
                    taken.bundles.insert(older.name.file_name());
                }
                taken.write(state_dir)?;
                done.start = Some((complete.name.clone(), verified));
                break;
            }
            Err(reason) => done.rejected.push(reason),
        }
    }
    for stored in new {
        take(&store, stored, settings, &mut taken)?;
    }
    Ok(done)
}

/// What the store holds for this receiver, for `receiver status`.
#[derive(Debug, Serialize)]
pub struct Survey {
    pub store: String,
    pub bundles: usize,
    /// Bundles in the store this receiver has not taken yet.
    pub not_taken: usize,
    /// Why the store could not be listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Lists the store (an inbox directory has none); a store that cannot be listed is
/// reported, not an error of status.
pub fn survey(settings: &ReceiverSettings) -> Option<Survey> {
    let store_settings = settings.inbox.store.as_ref()?;
    let mut survey = Survey {
        store: store_settings.describe(),
        bundles: 0,
        not_taken: 0,
        error: None,
    };
    let listed = S3Store::open(store_settings).and_then(|store| store.list());
    let taken = Taken::read(&settings.state.dir, &survey.store);
    match listed.and_then(|listed| Ok((listed, taken?))) {
        Ok((listed, taken)) => {
            survey.bundles = listed.len();
            survey.not_taken = listed
                .iter()
                .filter(|s| !taken.bundles.contains(&s.name.file_name()))
                .count();
        }
        Err(err) => survey.error = Some(format!("{err:#}").replace('\n', "; ")),
    }
    Some(survey)
}

/// Fetches one bundle into the work directory, then records it as taken. A crash in
/// between fetches it again, and the ledger keeps the load exactly once.
fn take(
    store: &S3Store,
    stored: &Stored,
    settings: &ReceiverSettings,
    taken: &mut Taken,
) -> anyhow::Result<()> {
    download(store, stored, settings)?;
    taken.bundles.insert(stored.name.file_name());
    taken.write(&settings.state.dir)
}

/// Removes what an interrupted fetch left in the work directory: only this job writes there.
fn remove_leftovers(dir: &Path) -> anyhow::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err).with_context(|| format!("list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("list {}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if [Kind::Complete, Kind::Partial]
            .into_iter()
            .any(|kind| BundleName::is_temp_of_kind(name, kind))
        {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("remove {}", entry.path().display()))?;
            tracing::info!(leftover = %name, "removed the leftover of an interrupted fetch");
        }
    }
    Ok(())
}

/// Streams one bundle into the work directory under a temporary name the load ignores,
/// checks its size, and renames it into place. One already there is kept.
fn download(store: &S3Store, stored: &Stored, settings: &ReceiverSettings) -> anyhow::Result<()> {
    let dir = &settings.inbox.dir;
    let name = &stored.name;
    let path = dir.join(name.file_name());
    if path.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let free =
        free_space(dir).with_context(|| format!("measure free space in {}", dir.display()))?;
    let reserve = settings.inbox.min_free();
    if free < stored.bytes.saturating_add(reserve) {
        return Err(cause::tag(
            anyhow::anyhow!(
                "not enough disk space to fetch bundle {name} ({}) into {}: {} is free and {} must stay free (inbox.min_free); nothing was fetched\nhint: make room there or shorten [retention]",
                Size(stored.bytes),
                dir.display(),
                Size(free),
                Size(reserve)
            ),
            Cause::Disk,
        ));
    }
    let temp = dir.join(name.temp_name());
    let result = stream_into(store, name, &temp, stored.bytes);
    if let Err(err) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    std::fs::rename(&temp, &path)
        .with_context(|| format!("move {} to {}", temp.display(), path.display()))?;
    tracing::info!(bundle = %name, store = %store.label(), bytes = stored.bytes, "fetched");
    Ok(())
}

fn stream_into(
    store: &S3Store,
    name: &BundleName,
    temp: &Path,
    expected: u64,
) -> anyhow::Result<()> {
    let mut reader = store.get(name)?;
    let file = std::fs::File::create(temp).with_context(|| format!("create {}", temp.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let copied = std::io::copy(&mut reader, &mut out)
        .with_context(|| format!("fetch {name} into {}", temp.display()))
        .map_err(|err| cause::tag(err, Cause::Store))?;
    let file = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("write {}", temp.display()))?;
    file.sync_all()
        .with_context(|| format!("write {}", temp.display()))?;
    if copied != expected {
        return Err(cause::tag(
            anyhow::anyhow!(
                "fetch {name} from {}: got {copied} bytes, the store lists {expected}",
                store.label()
            ),
            Cause::Store,
        ));
    }
    Ok(())
}
