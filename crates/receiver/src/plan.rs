//! Decides, before anything changes, what a complete bundle does to each table: create
//! it, replace its rows, or drop and recreate it (guarantee 6).

use pgferry::bundle::Manifest;
use pgferry::pg::{catalog, Psql};
use pgferry::settings::names::QualifiedName;
use pgferry::settings::receiver::OnSchemaChange;

use crate::refused::Refused;
use crate::schema_diff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Missing on the target: create it from the bundle's schema.
    Create,
    /// Same columns: replace its rows.
    Replace,
    /// Columns differ and `on_schema_change = "recreate"`: drop it, then create it.
    Recreate,
}

#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: QualifiedName,
    pub action: Action,
}

/// What the target has of each of the bundle's tables, in manifest order.
fn infos(psql: &Psql, manifest: &Manifest) -> anyhow::Result<Vec<Option<catalog::TableInfo>>> {
    let tables: Vec<QualifiedName> = manifest.tables.iter().map(|t| t.table.clone()).collect();
    catalog::tables_info(psql, &tables)
}

/// Checks that every table of a partial bundle exists on the target with the same columns.
pub fn partial(psql: &Psql, manifest: &Manifest) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for (table, info) in manifest.tables.iter().zip(infos(psql, manifest)?) {
        match info {
            None => problems.push(format!(
                "table {} does not exist on the target; hint: load a complete bundle first (run `sender complete`)",
                table.table
            )),
            Some(info) => {
                let differences = schema_diff::differences(&table.columns, &info.columns);
                if !differences.is_empty() {
                    problems.push(schema_diff::describe(&table.table, &differences));
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(Refused::Schema(problems.join("\n")).into());
    }
    Ok(())
}

/// The actions for every table, or the error naming each table whose columns differ.
pub fn complete(
    psql: &Psql,
    manifest: &Manifest,
    on_change: OnSchemaChange,
) -> anyhow::Result<Vec<TablePlan>> {
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for (table, info) in manifest.tables.iter().zip(infos(psql, manifest)?) {
        let action = match info {
            None => Action::Create,
            Some(info) => {
                let differences = schema_diff::differences(&table.columns, &info.columns);
                if differences.is_empty() {
                    Action::Replace
                } else if on_change == OnSchemaChange::Recreate {
                    tracing::warn!(table = %table.table, differences = %differences.join("; "), "recreating the table: its columns differ");
                    Action::Recreate
                } else {
                    problems.push(schema_diff::describe(&table.table, &differences));
                    continue;
                }
            }
        };
        plans.push(TablePlan {
            table: table.table.clone(),
            action,
        });
    }
    if !problems.is_empty() {
        return Err(Refused::Schema(problems.join("\n")).into());
    }
    Ok(plans)
}
