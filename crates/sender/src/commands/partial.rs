//! `sender partial [--minutes N]`: the rows changed since the last bundle (minus the
//! overlap), the parent rows they reference, and the files they need, from one snapshot.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use pgferry::bundle::manifest::{TableManifest, Window as ManifestWindow};
use pgferry::bundle::writer::{BundleWriter, PART_SIZE};
use pgferry::bundle::{BundleName, Kind, Manifest};
use pgferry::cause::{Cause, CauseExt};
use pgferry::exit::Exit;
use pgferry::job::Options;
use pgferry::pg::catalog::{ForeignKey, PartitionMember, FOREIGN_KEYS_SQL};
use pgferry::pg::ident::quote_ident;
use pgferry::pg::Psql;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::{ConfigError, SenderSettings};
use pgferry::watermark;

use crate::publish::{new_manifest, publish, Mark};
use crate::rows::{self, CsvCounter};
use crate::selection::{self, PartialTable, Selected};
use crate::snapshot::Snapshot;
use crate::window::{self, Basis, Window};
use crate::{pack, tables};

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
    let started = Instant::now();
    let psql = Psql::new(settings.source.connection());
    let mut snapshot = Snapshot::open(&psql)?;
    // Named by the database's clock, like the window: see `complete`.
    let name = BundleName::new(snapshot.time, Kind::Partial).with_codec(settings.compression.codec);
    let catalog = snapshot.tables()?;
    let partial_tables = resolve_partial_tables(settings, &catalog, &mut snapshot)?;
    let (end, held_back) = snapshot.limit();
    let (window, next_mark) = choose_window(settings, end, minutes)?;
    let fks: Option<Vec<ForeignKey>> = snapshot.json(FOREIGN_KEYS_SQL)?;
    let selected = selection::select(&partial_tables, &fks.unwrap_or_default(), window);
    let trees = snapshot.partition_trees()?;
    require_complete_tables(settings, &catalog, &trees, &selected)?;
    let mut manifest = new_manifest(settings, &name, snapshot.time, &snapshot.server_version);
    manifest.window = Some(ManifestWindow {
        start: window.start,
        end: window.end,
    });
    for table in &selected {
        manifest.tables.push(describe(&mut snapshot, table)?);
    }
    let referenced = referenced_files(settings, &selected, &mut snapshot)?;
    let published = publish(
        settings,
        &name,
        &mut manifest,
        next_mark.map(|at| Mark { at, held_back }),
        |writer, manifest| {
            pack_rows(&psql, &snapshot.id, &selected, manifest, writer)?;
            pack_files(settings, window, &referenced, manifest, writer)
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

/// The configured partial tables, each checked: it exists, its `changed_at` column exists.
fn resolve_partial_tables(
    settings: &SenderSettings,
    catalog: &[QualifiedName],
    snapshot: &mut Snapshot,
) -> anyhow::Result<Vec<PartialTable>> {
    let mut found = Vec::new();
    for (index, entry) in settings.partial.tables.iter().enumerate() {
        let key = format!("partial.tables[{index}].table");
        let table = entry
            .table
            .literal()
            .filter(|t| catalog.contains(t))
            .ok_or_else(|| tables::no_match(&settings.path, &key, &entry.table.to_string()))?;
        let info = snapshot.table_info(&table)?;
        if !info.columns.iter().any(|c| c.name == entry.changed_at) {
            return Err(ConfigError::new(
                &settings.path,
                format!("partial.tables[{index}].changed_at"),
                format!("table {table} has no column {:?}", entry.changed_at),
            )
            .into());
        }
        found.push(PartialTable {
            table,
            changed_at: entry.changed_at.clone(),
        });
    }
    Ok(found)
}

/// Every table a partial sends must also be a table of complete bundles: only a complete
/// creates tables on the target, and a complete must be able to replace what partials sent.
fn require_complete_tables(
    settings: &SenderSettings,
    catalog: &[QualifiedName],
    trees: &[PartitionMember],
    selected: &[Selected],
) -> anyhow::Result<()> {
    let complete = tables::complete_tables(settings, catalog, trees)?;
    let outside: Vec<String> = selected
        .iter()
        .filter(|s| !complete.contains(&s.table))
        .map(|s| {
            if s.parent {
                format!("{} (referenced by sent rows)", s.table)
            } else {
                s.table.to_string()
            }
        })
        .collect();
    if !outside.is_empty() {
        return Err(ConfigError::new(
            &settings.path,
            "source.tables",
            format!(
                "partial bundles send table(s) {} but complete bundles do not, so the receiver would never create them; hint: add them to source.tables",
                outside.join(", ")
            ),
        )
        .into());
    }
    Ok(())
}

/// The window, and where the high-water mark goes once its bundle is published.
fn choose_window(
    settings: &SenderSettings,
    end: DateTime<Utc>,
    minutes: Option<u32>,
) -> anyhow::Result<(Window, Option<DateTime<Utc>>)> {
    let mark = watermark::read(&settings.state.dir)?.map(|w| w.high_water_mark);
    let fixed = minutes
        .map(|m| chrono::Duration::minutes(i64::from(m)))
        .or(settings.partial.window.map(|w| w.as_chrono()));
    let (window, basis) = window::choose(end, mark, settings.partial.overlap.as_chrono(), fixed);
    let next_mark = window::next_mark(window, basis, mark);
    if next_mark.is_none() {
        tracing::warn!(
            window_start = %window.start.to_rfc3339(),
            "the fixed window starts after the high-water mark, so rows changed in between are not sent; the mark stays where it is so the next partial without --minutes sends them"
        );
    }
    if basis == Basis::NoHighWaterMark {
        tracing::warn!(
            window_start = %window.start.to_rfc3339(),
            "no high-water mark yet (no partial or complete was published from {}); sending the last 5 minutes. hint: run `sender complete` first",
            settings.state.dir.display()
        );
    }
    Ok((window, next_mark))
}

fn describe(snapshot: &mut Snapshot, selected: &Selected) -> anyhow::Result<TableManifest> {
    let info = snapshot.table_info(&selected.table)?;
    if info.key.is_none() {
        bail!(
            "table {} has no primary key or unique not-null key, so its rows cannot be upserted on the receiver; hint: add a primary key{}",
            selected.table,
            if selected.parent { " (it is sent as the parent of a partial table)" } else { "" }
        );
    }
    Ok(TableManifest {
        table: selected.table.clone(),
        rows: 0,
        columns: info.columns,
        key: info.key,
        parent: selected.parent,
        schema_pre: None,
        schema_post: None,
    })
}

/// Per file set, the file names that `referenced_by` columns of the sent rows hold.
fn referenced_files(
    settings: &SenderSettings,
    selected: &[Selected],
    snapshot: &mut Snapshot,
) -> anyhow::Result<Vec<BTreeSet<String>>> {
    let mut per_set = Vec::new();
    for set in &settings.files {
        let mut names = BTreeSet::new();
        if set.partial {
            for column in &set.referenced_by {
                let Some(table) = selected.iter().find(|s| s.table == column.table) else {
                    continue;
                };
                let col = format!("t0.{}", quote_ident(&column.column));
                let sql = format!(
                    "SELECT json_agg(DISTINCT {col}::text) FROM {} AS t0 WHERE ({}) AND {col} IS NOT NULL AND {col}::text <> ''",
                    table.table.quoted(),
                    table.predicate
                );
                let values: Option<Vec<String>> = snapshot
                    .json(&sql)
                    .with_context(|| format!("read file names from {column}"))?;
                names.extend(values.unwrap_or_default());
            }
        }
        per_set.push(names);
    }
    Ok(per_set)
}

/// How many tables' `COPY` runs ahead of the one being packed. Each psql spends ~50 ms
/// starting up, connecting and planning; started ahead, those costs overlap instead of
/// adding up. Each one ahead holds at most a pipe's worth of rows.
const COPIES_AHEAD: usize = 4;

fn pack_rows<W: Write + Send + 'static>(
    psql: &Psql,
    snapshot_id: &str,
    selected: &[Selected],
    manifest: &mut Manifest,
    writer: &mut BundleWriter<W>,
) -> anyhow::Result<()> {
    let mut started = VecDeque::new();
    let mut not_started = selected.iter();
    for (index, (table, record)) in selected.iter().zip(manifest.tables.iter_mut()).enumerate() {
        while started.len() <= COPIES_AHEAD {
            match not_started.next() {
                Some(next) => started.push_back(rows::copy_out(psql, snapshot_id, next)?),
                None => break,
            }
        }
        let copy = started
            .pop_front()
            .with_context(|| format!("no COPY was started for table {}", table.table))?;
        let mut counter = CsvCounter::new(copy);
        writer
            .append_parts(
                &format!("rows/{index:04}-"),
                ".csv",
                &mut counter,
                PART_SIZE,
            )
            .with_context(|| format!("stream the rows of table {} into the bundle", table.table))
            .cause(Cause::Database)?;
        record.rows = counter.records();
    }
    Ok(())
}

fn pack_files<W: Write + Send + 'static>(
    settings: &SenderSettings,
    window: Window,
    referenced: &[BTreeSet<String>],
    manifest: &mut Manifest,
    writer: &mut BundleWriter<W>,
) -> anyhow::Result<()> {
    let start = std::time::SystemTime::from(window.start);
    let end = std::time::SystemTime::from(window.end);
    for (set, names) in settings.files.iter().zip(referenced) {
        if !set.partial {
            continue;
        }
        let (files, missing) = pack::list_partial(set, start, end, names)?;
        let mut record = pack::append(writer, set, &files)?;
        if !missing.is_empty() {
            tracing::warn!(set = %set.name, missing = missing.len(), "referenced files do not exist; listed as missing in the manifest");
        }
        record.missing = missing;
        manifest.file_sets.push(record);
    }
    Ok(())
}

/// Qualified names of the partial tables, for `check`.
pub fn partial_table_names(settings: &SenderSettings) -> Vec<QualifiedName> {
    settings
        .partial
        .tables
        .iter()
        .filter_map(|t| t.table.literal())
        .collect()
}
