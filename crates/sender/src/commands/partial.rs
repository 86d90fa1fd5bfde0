//! `sender partial [--minutes N]`: the rows changed since the last bundle (minus the
//! overlap), the parent rows they reference, and the files they need, from one snapshot.

use std::path::Path;
use std::time::Instant;

use pgferry::bundle::manifest::Window as ManifestWindow;
use pgferry::bundle::{BundleName, Kind};
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::pg::catalog::{ForeignKey, FOREIGN_KEYS_SQL};
use pgferry::pg::Psql;
use pgferry::settings::{ChangeSource, SenderSettings};

use crate::publish::{bundle_name, new_manifest, publish, Mark};
use crate::snapshot::Snapshot;
use crate::{logical, pack, partial_tables, rows, selection, window};

pub fn run(config: &Path, minutes: Option<u32>, options: &Options) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let jobs = crate::metrics::jobs(&settings, options);
    jobs.run("partial", || job(&settings, minutes))?;
    Ok(Exit::Done)
}

/// The job the command and the daemon run.
pub fn job(settings: &SenderSettings, minutes: Option<u32>) -> anyhow::Result<()> {
    partial(settings, minutes).map(|_| ())
}

/// Makes and publishes one partial bundle; returns its name.
pub fn partial(settings: &SenderSettings, minutes: Option<u32>) -> anyhow::Result<BundleName> {
    if settings.partial.source == ChangeSource::Logical {
        return logical::partial(settings, minutes);
    }
    let started = Instant::now();
    let psql = Psql::new(settings.source.connection());
    let mut snapshot = Snapshot::open(&psql)?;
    // Named by the database's clock, like the window: see `complete`.
    let name = bundle_name(settings, snapshot.time, Kind::Partial);
    let catalog = snapshot.tables()?;
    let configured = partial_tables::resolve(settings, &catalog, &mut snapshot)?;
    let (end, held_back) = snapshot.limit();
    let (window, next_mark) = window::for_partial(settings, end, minutes)?;
    let fks: Option<Vec<ForeignKey>> = snapshot.json(FOREIGN_KEYS_SQL)?;
    let selected = selection::select(&configured, &fks.unwrap_or_default(), window);
    let trees = snapshot.partition_trees()?;
    partial_tables::require_complete(settings, &catalog, &trees, &selected)?;
    let mut manifest = new_manifest(settings, &name, snapshot.time, &snapshot.server_version);
    manifest.window = Some(ManifestWindow {
        start: window.start,
        end: window.end,
    });
    for table in &selected {
        manifest
            .tables
            .push(partial_tables::describe(&mut snapshot, table)?);
    }
    let referenced = pack::referenced_names(settings, &selected, &mut snapshot)?;
    let published = publish(
        settings,
        &name,
        &mut manifest,
        next_mark.map(|at| Mark { at, held_back }),
        |writer, manifest| {
            rows::pack(&psql, &snapshot.id, &selected, manifest, writer)?;
            pack::append_partial(settings, window, &referenced, manifest, writer)
        },
    )?;
    snapshot.close()?;
    tracing::info!(
        bundle = %name, path = %published, rows = manifest.total_rows(), tables = selected.len(),
        window_start = %window.start.to_rfc3339(), window_end = %window.end.to_rfc3339(),
        seconds = started.elapsed().as_secs_f64(), "published partial bundle"
    );
    Ok(name)
}
