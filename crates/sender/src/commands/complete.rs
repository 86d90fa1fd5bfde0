//! `sender complete`: one complete bundle now. Every configured table (schema and data)
//! and every configured file, read from one snapshot and streamed straight to the inbox.

use std::io::Write;
use std::path::Path;
use std::thread::ScopedJoinHandle;
use std::time::Instant;

use anyhow::Context;
use pgferry::bundle::manifest::TableManifest;
use pgferry::bundle::writer::{BundleWriter, PART_SIZE};
use pgferry::bundle::{BundleName, Kind, Manifest};
use pgferry::cause::{Cause, CauseExt};
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::pg::{catalog, Psql};
use pgferry::pipe::ReadAhead;
use pgferry::process::CommandReader;
use pgferry::progress::Progress;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::{ChangeSource, SenderSettings};

use crate::publish::{bundle_name, new_manifest, publish, Mark};
use crate::snapshot::Snapshot;
use crate::{dump, logical, pack, tables};

pub fn run(config: &Path, options: &Options) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let jobs = crate::metrics::jobs(&settings, options);
    jobs.run("complete", || job(&settings, &options.progress))?;
    Ok(Exit::Done)
}

/// The job the command and the daemon run. `progress` shows the dump and upload to a
/// person at a terminal (the daemon has none).
pub fn job(settings: &SenderSettings, progress: &Progress) -> anyhow::Result<()> {
    complete(settings, progress).map(|_| ())
}

/// Makes and publishes one complete bundle; returns its name.
pub fn complete(settings: &SenderSettings, progress: &Progress) -> anyhow::Result<BundleName> {
    let started = Instant::now();
    let psql = Psql::new(settings.source.connection());
    let (mut snapshot, begun) = match settings.partial.source {
        ChangeSource::Logical => {
            let start = logical::before_complete(settings, &psql)?;
            let (snapshot, begun) = logical::snapshot(&psql, start)?;
            (snapshot, Some(begun))
        }
        ChangeSource::ChangedAt => (Snapshot::open(&psql)?, None),
    };
    // Named by the database's clock, like the windows: a local clock that jumps cannot
    // reorder bundles on the receiver.
    let name = bundle_name(settings, snapshot.time, Kind::Complete);
    let catalog = snapshot.tables()?;
    let trees = snapshot.partition_trees()?;
    let tables = tables::complete_tables(settings, &catalog, &trees)?;
    let mut manifest = new_manifest(settings, &name, snapshot.time, &snapshot.server_version);
    manifest.slot = begun.as_ref().map(|begun| logical::range(settings, begun));
    let connection = settings.source.connection();
    let snapshot_id = snapshot.id.clone();
    // A complete replaces everything: the next partial starts from its snapshot, or from
    // the start of a transaction then open, whose rows the snapshot does not hold.
    let (mark_at, held_back) = snapshot.limit();
    let published = std::thread::scope(|scope| {
        // Each pg_dump spends its first tenths of a second starting up: the schema dumps
        // and the data dump start now, while the tables are described and the SSH
        // connection is made. pg_dump's output is read and its rows counted on a thread
        // of their own, so it keeps going while the bundle's thread compresses.
        let schemas = scope.spawn(|| dump::schemas(&connection, &snapshot_id, &tables));
        let counter = dump::RowCounter::new(dump::data(&connection, &snapshot_id, &tables)?)
            .with_progress(progress.clone());
        let data = ReadAhead::new(counter);
        for table in &tables {
            manifest.tables.push(describe(&mut snapshot, table)?);
        }
        manifest.dependencies = snapshot.dependencies(&tables)?;
        if progress.is_on() {
            let expected: Option<u64> = snapshot.json(&catalog::tables_size_sql(&tables))?;
            progress.start(format!("complete bundle {name}"), expected);
        }
        publish(
            settings,
            &name,
            &mut manifest,
            Some(Mark {
                at: mark_at,
                held_back,
            }),
            |writer, manifest| pack_bundle(settings, schemas, data, manifest, writer),
        )
    })?;
    snapshot.close()?;
    if let Some(begun) = begun {
        logical::after_complete(settings, &psql, begun)?;
    }
    progress.done(format!(
        "published {name}: {} rows in {:.1} s",
        manifest.total_rows(),
        started.elapsed().as_secs_f64()
    ));
    tracing::info!(
        bundle = %name, path = %published, rows = manifest.total_rows(),
        seconds = started.elapsed().as_secs_f64(), "published complete bundle"
    );
    Ok(name)
}

fn describe(snapshot: &mut Snapshot, table: &QualifiedName) -> anyhow::Result<TableManifest> {
    Ok(TableManifest::described(
        table.clone(),
        snapshot.table_info(table)?,
    ))
}

/// Streams schema, data and files into the bundle.
fn pack_bundle<W: Write + Send + 'static>(
    settings: &SenderSettings,
    schemas: ScopedJoinHandle<'_, anyhow::Result<Vec<dump::TableSchema>>>,
    mut data: ReadAhead<dump::RowCounter<CommandReader>>,
    manifest: &mut Manifest,
    writer: &mut BundleWriter<W>,
) -> anyhow::Result<()> {
    let schemas = schemas
        .join()
        .map_err(|_| anyhow::anyhow!("the schema dump thread panicked"))??;
    for (index, (table, schema)) in manifest.tables.iter_mut().zip(schemas).enumerate() {
        let pre = format!("schema/{index:04}.pre.sql");
        let post = format!("schema/{index:04}.post.sql");
        writer.append_bytes(&pre, &schema.pre)?;
        writer.append_bytes(&post, &schema.post)?;
        table.schema_pre = Some(pre);
        table.schema_post = Some(post);
    }
    writer
        .append_parts("data/", ".sql", &mut data, PART_SIZE)
        .context("stream the data from pg_dump into the bundle")
        .cause(Cause::Database)?;
    let counter = data
        .finish()
        .context("finish reading pg_dump")
        .cause(Cause::Database)?;
    for table in &mut manifest.tables {
        table.rows = counter.rows.get(&table.table).copied().unwrap_or(0);
    }
    for set in &settings.files {
        let files = pack::list(set)?;
        manifest.file_sets.push(pack::append(writer, set, &files)?);
    }
    Ok(())
}
