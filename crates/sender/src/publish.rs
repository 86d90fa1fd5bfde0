//! The part of every bundle job after the database work: stream the bundle into a
//! temporary file in the inbox, publish it with a rename, and only then move the
//! high-water mark (guarantees 1 and 4).

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::bundle::manifest::Source;
use pgferry::bundle::writer::BundleWriter;
use pgferry::bundle::{BundleName, Manifest, FORMAT_VERSION};
use pgferry::cause::{self, Cause};
use pgferry::last_bundles::{self, BundleFacts};
use pgferry::settings::SenderSettings;
use pgferry::sftp::Upload;
use pgferry::watermark::{self, HeldBack, Watermark};

use crate::upload;

/// A manifest with the bundle's identity filled in; tables, files and entries follow.
pub fn new_manifest(
    settings: &SenderSettings,
    name: &BundleName,
    snapshot_time: DateTime<Utc>,
    server_version: &str,
) -> Manifest {
    let connection = settings.source.connection();
    Manifest {
        format_version: FORMAT_VERSION,
        name: name.file_name(),
        kind: name.kind,
        created_at: name.created,
        source: Source {
            host: connection.host().to_string(),
            dbname: connection.dbname().to_string(),
            server_version: server_version.to_string(),
        },
        snapshot_time,
        window: None,
        tables: Vec::new(),
        dependencies: Vec::new(),
        slot: None,
        file_sets: Vec::new(),
        entries: Vec::new(),
    }
}

/// Where the high-water mark goes once the bundle is published.
pub struct Mark {
    pub at: DateTime<Utc>,
    pub held_back: Option<HeldBack>,
}

/// Streams the bundle that `pack` writes into the inbox and publishes it; then records
/// `mark` (unless `None`). A failed upload leaves no published bundle and no moved mark.
pub fn publish(
    settings: &SenderSettings,
    name: &BundleName,
    manifest: &mut Manifest,
    mark: Option<Mark>,
    pack: impl FnOnce(&mut BundleWriter<Upload>, &mut Manifest) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    if name.codec != settings.compression.codec {
        anyhow::bail!(
            "bundle {name} is named for {}, but compression is {}",
            name.codec,
            settings.compression
        );
    }
    let inbox = upload::open_inbox(&settings.remote, name.kind)?;
    let upload = inbox.create_temp(name)?;
    let temp = upload.temp.clone();
    tracing::info!(bundle = %name, host = %inbox.label, compression = %settings.compression, "uploading {} bundle", name.kind);
    let written = BundleWriter::new(upload, manifest.created_at, settings.compression)
        .context("start the compressor")
        .and_then(|mut writer| pack(&mut writer, manifest).map(|()| writer))
        .and_then(|writer| {
            fail::fail_point!("sender-after-dump", |_| pgferry::process::kill_self());
            writer.finish(manifest).context("finish the bundle")
        });
    let (upload, written) = match written {
        Ok(done) => done,
        Err(err) => {
            // A failed write to the upload marks the link broken: the link is the cause,
            // whatever fed it.
            let err = if inbox.link_broken() {
                cause::tag(err, Cause::Link)
            } else {
                err
            };
            inbox.discard(&temp);
            return Err(err.context(format!(
                "make bundle {name} in {}:{}",
                inbox.label, settings.remote.dir
            )));
        }
    };
    fail::fail_point!("sender-before-rename", |_| pgferry::process::kill_self());
    let published = inbox.publish(upload)?;
    fail::fail_point!("sender-after-rename", |_| pgferry::process::kill_self());
    if let Some(mark) = mark {
        watermark::record(
            &settings.state.dir,
            &Watermark {
                high_water_mark: mark.at,
                bundle: name.file_name(),
                held_back: mark.held_back,
            },
        )?;
    }
    last_bundles::record(
        &settings.state.dir,
        name.kind,
        BundleFacts {
            bundle: name.file_name(),
            bytes: written.size,
            rows: manifest.total_rows(),
        },
    )?;
    Ok(published)
}
