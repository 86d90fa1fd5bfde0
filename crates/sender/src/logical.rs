//! `[partial] source = "logical"`: partials carry every change of the complete tables,
//! read from a logical replication slot (guarantee 12).
//!
//! - **The handoff.** The first complete bundle makes the publication, then the slot with
//!   an exported snapshot, and dumps from that snapshot: the first partial starts exactly
//!   where the complete ends. A later complete keeps the slot: it reads where the primary
//!   writes before it takes its snapshot, and once it is published moves the slot there.
//!   Everything before that point is in the complete; the changes between it and the
//!   snapshot come again in the next partial and converge, since each is a whole-row upsert
//!   or a delete by key, applied in commit order (an update that leaves a TOASTed value out
//!   keeps the value the row has).
//! - **The slot moves only after the publish.** A partial peeks, publishes, then moves the
//!   slot to the end of the last transaction it carries. A crash in between sends those
//!   changes again, which converges the same way.
//! - **A lost slot** (PostgreSQL invalidated it: its changes are gone) fails the partial,
//!   naming it; the next complete drops it and makes it anew.

use anyhow::Context;
use pgferry::bundle::manifest::{SlotRange, TableManifest, Window as ManifestWindow};
use pgferry::bundle::writer::PART_SIZE;
use pgferry::bundle::{BundleName, Kind};
use pgferry::cause::{self, Cause, CauseExt};
use pgferry::pg::catalog::{self, PartitionMember};
use pgferry::pg::pgoutput::Lsn;
use pgferry::pg::slot::{self as stream, NewSlot};
use pgferry::pg::Psql;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::SenderSettings;

use crate::changes::ChangesCsv;
use crate::publish::{bundle_name, new_manifest, publish, Mark};
use crate::snapshot::Snapshot;
use crate::{pack, slot, tables, window};

/// Where a complete bundle starts the slot's stream.
pub enum Start {
    /// The slot was made now; the complete dumps from its exported snapshot.
    Created(NewSlot),
    /// The slot exists; it moves here once the complete is published.
    Existing(Lsn),
}

/// Where a complete's snapshot starts the slot's stream, once the snapshot is taken.
pub struct Begun {
    pub at: Lsn,
    /// The slot existed: it moves to `at` once the complete is published.
    existing: bool,
}

/// Before a complete bundle's snapshot: the publication over its tables, and the slot.
pub fn before_complete(settings: &SenderSettings, psql: &Psql) -> anyhow::Result<Start> {
    let names: Option<Vec<QualifiedName>> = psql.json(catalog::TABLES_SQL)?;
    let trees: Option<Vec<PartitionMember>> = psql.json(catalog::PARTITION_TREES_SQL)?;
    let trees = trees.unwrap_or_default();
    let tables = tables::complete_tables(settings, &names.unwrap_or_default(), &trees)?;
    let partial = &settings.partial;
    slot::refuse_unpublishable(psql, &tables, &trees)?;
    // Before the slot: decoding looks the publication up as of each change.
    slot::ensure_publication(psql, &partial.publication, &tables, &trees)?;
    match slot::state(psql, &partial.slot)? {
        Some(state) if !state.is_lost() => Ok(Start::Existing(slot::current_lsn(psql)?)),
        state => {
            if state.is_some() {
                tracing::warn!(slot = %partial.slot, "the replication slot was invalidated; making it anew");
                slot::drop_slot(psql, &partial.slot)?;
            }
            let made = stream::create_exported(psql, &partial.slot)?;
            tracing::info!(slot = %partial.slot, at = %made.consistent_point, "made the replication slot");
            Ok(Start::Created(made))
        }
    }
}

/// The complete's snapshot: the new slot's (its replication session is let go once the
/// snapshot is imported, so a partial may read the slot), or a fresh one.
pub fn snapshot(psql: &Psql, start: Start) -> anyhow::Result<(Snapshot, Begun)> {
    match start {
        Start::Created(made) => {
            let snapshot = Snapshot::import(psql, &made.snapshot)?;
            let at = made.consistent_point;
            drop(made);
            held_after_snapshot();
            Ok((
                snapshot,
                Begun {
                    at,
                    existing: false,
                },
            ))
        }
        Start::Existing(at) => {
            let snapshot = Snapshot::open(psql)?;
            held_after_snapshot();
            Ok((snapshot, Begun { at, existing: true }))
        }
    }
}

/// The crash and handoff tests' hold between the snapshot and the dump.
fn held_after_snapshot() {
    fail::fail_point!("sender-after-snapshot", |gate| {
        pgferry::process::wait_at_gate(gate)
    });
}

/// What a complete's manifest says of the slot.
pub fn range(settings: &SenderSettings, begun: &Begun) -> SlotRange {
    let at = begun.at.to_string();
    SlotRange {
        name: settings.partial.slot.clone(),
        start: at.clone(),
        end: at,
    }
}

/// After a complete is published: the slot moves to where it starts.
pub fn after_complete(settings: &SenderSettings, psql: &Psql, begun: Begun) -> anyhow::Result<()> {
    if begun.existing {
        slot::advance(psql, &settings.partial.slot, begun.at)?;
    }
    Ok(())
}

/// Makes and publishes one logical partial bundle; returns its name.
pub fn partial(settings: &SenderSettings, minutes: Option<u32>) -> anyhow::Result<BundleName> {
    let psql = Psql::new(settings.source.connection());
    let partial = &settings.partial;
    let state = match slot::state(&psql, &partial.slot)? {
        Some(state) if !state.is_lost() => state,
        gone => {
            let why = if gone.is_some() {
                "was invalidated by PostgreSQL (wal_status lost): the changes it held are gone"
            } else {
                "does not exist"
            };
            return Err(cause::tag(
                anyhow::anyhow!(
                    "replication slot {} {why}; hint: run `sender complete`: a complete bundle makes the slot and the partials start where it ends",
                    partial.slot
                ),
                Cause::Database,
            ));
        }
    };
    let start = state.confirmed()?.unwrap_or_default();
    // The bundle holds the transactions that commit before this point, read before the
    // snapshot whose time names the bundle: a complete whose snapshot is later holds them
    // all, so the receiver may skip this partial once such a complete is applied.
    let upto = slot::current_lsn(&psql)?;
    let mut snapshot = Snapshot::open(&psql)?;
    let name = bundle_name(settings, snapshot.time, Kind::Partial);
    let catalog_tables = snapshot.tables()?;
    let trees = snapshot.partition_trees()?;
    let tables = tables::complete_tables(settings, &catalog_tables, &trees)?;
    // The window ends at the snapshot, never held back by an open transaction as in
    // changed_at mode: the slot delivers that transaction when it commits. It chooses the
    // files to send and tells the receiver which completes make this partial obsolete.
    let (window, next_mark) = window::for_partial(settings, snapshot.time, minutes)?;
    let mut manifest = new_manifest(settings, &name, snapshot.time, &snapshot.server_version);
    manifest.window = Some(ManifestWindow {
        start: window.start,
        end: window.end,
    });
    for table in &tables {
        manifest
            .tables
            .push(describe(&mut snapshot, table, &trees)?);
    }
    snapshot.close()?;
    let described = manifest.tables.clone();
    let mut read_end = upto;
    publish(
        settings,
        &name,
        &mut manifest,
        next_mark.map(|at| Mark {
            at,
            held_back: None,
        }),
        |writer, manifest| {
            let peek = stream::peek(&psql, &partial.slot, &partial.publication, Some(upto))?;
            let mut changes = ChangesCsv::new(peek, &described);
            writer
                .append_parts("changes/", ".csv", &mut changes, PART_SIZE)
                .with_context(|| {
                    format!(
                        "stream the changes of slot {} into the bundle",
                        partial.slot
                    )
                })
                .cause(Cause::Database)?;
            for (table, count) in manifest.tables.iter_mut().zip(&changes.counts) {
                table.rows = *count;
            }
            // Every transaction committed before `upto` is in the bundle, and one whose
            // commit record reaches past it may be too.
            read_end = changes.end.map_or(upto, |end| end.max(upto));
            manifest.slot = Some(SlotRange {
                name: partial.slot.clone(),
                start: start.to_string(),
                end: read_end.to_string(),
            });
            pack::append_partial(
                settings,
                window,
                &vec![Default::default(); settings.files.len()],
                manifest,
                writer,
            )
        },
    )?;
    fail::fail_point!("sender-before-slot-advance", |_| {
        pgferry::process::kill_self()
    });
    slot::advance(&psql, &partial.slot, read_end)?;
    check_retained(settings, &psql)?;
    tracing::info!(bundle = %name, changes = manifest.total_rows(), slot = %partial.slot, "published logical partial bundle");
    Ok(name)
}

/// A table of a logical partial: its columns and the key its changes apply by. Without a
/// key the receiver could not tell which row a change is for.
fn describe(
    snapshot: &mut Snapshot,
    table: &QualifiedName,
    trees: &[PartitionMember],
) -> anyhow::Result<TableManifest> {
    let info = snapshot.table_info(table)?;
    let root = trees.iter().any(|m| &m.table == table && m.depth == 0);
    if info.key.is_none() && !root {
        return Err(cause::tag(
            anyhow::anyhow!(
                "table {table} has no primary key or unique not-null key, so its changes cannot be applied by key on the receiver; hint: add a primary key"
            ),
            Cause::Config,
        ));
    }
    Ok(TableManifest::described(table.clone(), info))
}

/// Fails the job (so it alerts) when the slot keeps more WAL than `max_retained_wal`: the
/// primary's disk is at stake.
fn check_retained(settings: &SenderSettings, psql: &Psql) -> anyhow::Result<()> {
    let partial = &settings.partial;
    let retained = slot::state(psql, &partial.slot)?
        .and_then(|s| s.retained)
        .unwrap_or(0);
    let limit = partial.max_retained_wal.0;
    if u64::try_from(retained).unwrap_or(0) > limit {
        return Err(cause::tag(
            anyhow::anyhow!(
                "replication slot {} keeps {} of WAL on the primary, over max_retained_wal ({}); hint: a transaction left open on the primary holds it back, or partials stopped running",
                partial.slot,
                pgferry::settings::Size(u64::try_from(retained).unwrap_or(0)),
                partial.max_retained_wal
            ),
            Cause::Database,
        ));
    }
    Ok(())
}
