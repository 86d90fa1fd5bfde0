//! `sender complete`: one complete bundle now. Every configured table (schema and data)
//! and every configured file, read from one snapshot and streamed straight to the inbox.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::bundle::manifest::{Source, TableManifest};
use pgferry::bundle::writer::{BundleWriter, PART_SIZE};
use pgferry::bundle::{BundleName, Kind, Manifest, FORMAT_VERSION};
use pgferry::exit::Exit;
use pgferry::lock::JobLock;
use pgferry::pg::Psql;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::SenderSettings;
use pgferry::watermark::{self, Watermark};

use crate::snapshot::Snapshot;
use crate::{dump, pack, tables, upload};

pub fn run(config: &Path) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let _lock = JobLock::acquire(&settings.state.dir, "complete")?;
    complete(&settings, config, Utc::now())?;
    Ok(Exit::Done)
}

/// Makes and publishes one complete bundle; returns its name.
pub fn complete(
    settings: &SenderSettings,
    config: &Path,
    created: DateTime<Utc>,
) -> anyhow::Result<BundleName> {
    let started = Instant::now();
    let name = BundleName::new(created, Kind::Complete);
    let connection = settings.source.connection();
    let mut snapshot = Snapshot::open(&Psql::new(connection.clone()))?;
    let catalog = snapshot.tables()?;
    let tables = tables::complete_tables(settings, config, &catalog)?;
    let mut manifest = new_manifest(settings, &name, &snapshot);
    for table in &tables {
        manifest.tables.push(describe(&mut snapshot, table)?);
    }

    let inbox = upload::open_inbox(&settings.remote, Kind::Complete)?;
    let upload = inbox.create_temp(&name)?;
    let temp = upload.temp.clone();
    tracing::info!(bundle = %name, host = %inbox.label, tables = tables.len(), "uploading complete bundle");
    let written = match pack_bundle(settings, &snapshot.id, &tables, &mut manifest, upload) {
        Ok(written) => written,
        Err(err) => {
            inbox.discard(&temp);
            return Err(err.context(format!(
                "make bundle {name} into {}:{}",
                inbox.label, settings.remote.dir
            )));
        }
    };
    let published = inbox.publish(written)?;
    watermark::record(
        &settings.state.dir,
        &Watermark {
            high_water_mark: snapshot.time,
            bundle: name.file_name(),
        },
    )?;
    snapshot.close()?;
    tracing::info!(
        bundle = %name, host = %inbox.label, path = %published, rows = manifest.total_rows(),
        seconds = started.elapsed().as_secs_f64(), "published complete bundle"
    );
    Ok(name)
}

fn new_manifest(settings: &SenderSettings, name: &BundleName, snapshot: &Snapshot) -> Manifest {
    let connection = settings.source.connection();
    Manifest {
        format_version: FORMAT_VERSION,
        name: name.file_name(),
        kind: name.kind,
        created_at: name.created,
        source: Source {
            host: connection.host().to_string(),
            dbname: connection.dbname().to_string(),
            server_version: snapshot.server_version.clone(),
        },
        snapshot_time: snapshot.time,
        window: None,
        tables: Vec::new(),
        file_sets: Vec::new(),
        entries: Vec::new(),
    }
}

fn describe(snapshot: &mut Snapshot, table: &QualifiedName) -> anyhow::Result<TableManifest> {
    let info = snapshot.table_info(table)?;
    Ok(TableManifest {
        table: table.clone(),
        rows: 0,
        columns: info.columns,
        key: info.key,
        parent: false,
        schema_pre: None,
        schema_post: None,
    })
}

/// Streams schema, data and files into the upload, then the manifest.
fn pack_bundle<W: Write>(
    settings: &SenderSettings,
    snapshot_id: &str,
    tables: &[QualifiedName],
    manifest: &mut Manifest,
    out: W,
) -> anyhow::Result<W> {
    let connection = settings.source.connection();
    let mut writer = BundleWriter::new(out, manifest.created_at);
    for (index, table) in manifest.tables.iter_mut().enumerate() {
        let schema = dump::schema(&connection, snapshot_id, &table.table)?;
        let pre = format!("schema/{index:04}.pre.sql");
        let post = format!("schema/{index:04}.post.sql");
        writer.append_bytes(&pre, &schema.pre)?;
        writer.append_bytes(&post, &schema.post)?;
        table.schema_pre = Some(pre);
        table.schema_post = Some(post);
    }
    let mut counter = dump::RowCounter::new(dump::data(&connection, snapshot_id, tables)?);
    writer
        .append_parts("data/", ".sql", &mut counter, PART_SIZE)
        .context("dump the data")?;
    for table in &mut manifest.tables {
        table.rows = counter.rows.get(&table.table).copied().unwrap_or(0);
    }
    for set in &settings.files {
        let files = pack::list(set)?;
        manifest
            .file_sets
            .push(pack::append(&mut writer, set, &files)?);
    }
    let (out, _) = writer.finish(manifest).context("finish the bundle")?;
    Ok(out)
}
