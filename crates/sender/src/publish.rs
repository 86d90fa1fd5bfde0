//! The part of every bundle job after the database work: stream the bundle into the store
//! under a name nobody takes, publish it, and only then move the high-water mark
//! (guarantees 1 and 4); then drop what the store no longer needs to keep.

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::bundle::manifest::Source;
use pgferry::bundle::writer::BundleWriter;
use pgferry::bundle::{BundleName, Kind, Manifest, FORMAT_VERSION};
use pgferry::cause;
use pgferry::last_bundles::{self, BundleFacts};
use pgferry::seal::Seal;
use pgferry::settings::SenderSettings;
use pgferry::store::{self, retention, Upload};
use pgferry::watermark::{self, HeldBack, Watermark};

/// The name a bundle made now is published under: its kind, time, codec, and `.age` when
/// it is encrypted.
pub fn bundle_name(settings: &SenderSettings, created: DateTime<Utc>, kind: Kind) -> BundleName {
    BundleName::new(created, kind)
        .with_codec(settings.compression.codec)
        .encrypted(settings.bundle.encrypts())
}

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

/// Streams the bundle that `pack` writes into the store and publishes it; then records
/// `mark` (unless `None`) and applies the store's retention. A failed upload leaves no
/// published bundle and no moved mark.
pub fn publish(
    settings: &SenderSettings,
    name: &BundleName,
    manifest: &mut Manifest,
    mark: Option<Mark>,
    pack: impl FnOnce(&mut BundleWriter<Box<dyn Upload>>, &mut Manifest) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    if name != &bundle_name(settings, name.created, name.kind) {
        anyhow::bail!(
            "bundle {name} is not named for this config (compression {}, encrypted: {})",
            settings.compression,
            settings.bundle.encrypts()
        );
    }
    // Before the upload starts: a key that does not load fails the job with nothing sent.
    let seal = Seal::load(&settings.bundle)?;
    let store = store::open_for(&settings.remote, name.kind)?;
    let upload = store.put(name)?;
    let link = upload.link_watch();
    tracing::info!(
        bundle = %name, store = %store.label(), compression = %settings.compression,
        signed_by = ?seal.signer.as_ref().map(|s| s.key_id().to_string()),
        recipients = settings.bundle.encrypt_to.len(), "uploading {} bundle", name.kind
    );
    let written = BundleWriter::sealed(upload, manifest.created_at, settings.compression, &seal)
        .context("start the compressor")
        .and_then(|mut writer| pack(&mut writer, manifest).map(|()| writer))
        .and_then(|writer| {
            fail::fail_point!("sender-after-dump", |_| pgferry::process::kill_self());
            writer.finish(manifest).context("finish the bundle")
        });
    let (upload, written) = match written {
        Ok(done) => done,
        Err(err) => {
            // The writer, and the upload in it, went with the error: its write marked the
            // link broken, or the cause lies in what fed it.
            let err = if link.broken() {
                cause::tag(err, link.cause)
            } else {
                err
            };
            return Err(err.context(format!("make bundle {name} in {}", store.label())));
        }
    };
    fail::fail_point!("sender-before-rename", |_| pgferry::process::kill_self());
    let published = upload.publish()?;
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
    if let Some(keep) = settings.remote.keep_completes() {
        // After the publish and the mark: a failure here alerts, and the bundle stands.
        retention::apply(store.as_ref(), keep).with_context(|| {
            format!("{name} is published, but deleting the bundles older than the {keep} newest complete bundles (keep_completes) failed")
        })?;
    }
    Ok(published)
}
