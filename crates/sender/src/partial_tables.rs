//! Which tables a partial bundle reads: the configured ones, each checked against the
//! snapshot's catalog, and the rule that every table it sends is one complete bundles
//! send too.

use anyhow::bail;
use pgferry::bundle::manifest::TableManifest;
use pgferry::pg::catalog::PartitionMember;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::{ConfigError, SenderSettings};

use crate::selection::{PartialTable, Selected};
use crate::snapshot::Snapshot;
use crate::tables;

/// The configured partial tables, each checked: it exists, its `changed_at` column exists.
pub fn resolve(
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
pub fn require_complete(
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

/// The manifest entry of a selected table: its columns and the key its rows are upserted by.
pub fn describe(snapshot: &mut Snapshot, selected: &Selected) -> anyhow::Result<TableManifest> {
    let info = snapshot.table_info(&selected.table)?;
    if info.key.is_none() {
        bail!(
            "table {} has no primary key or unique not-null key, so its rows cannot be upserted on the receiver; hint: add a primary key{}",
            selected.table,
            if selected.parent { " (it is sent as the parent of a partial table)" } else { "" }
        );
    }
    Ok(TableManifest {
        parent: selected.parent,
        ..TableManifest::described(selected.table.clone(), info)
    })
}
