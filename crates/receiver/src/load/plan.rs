//! Decides, before anything changes, what a complete bundle does to each table: create
//! it, replace its rows, or drop and recreate it (guarantee 6).

use pgferry::bundle::Manifest;
use pgferry::pg::dependencies::{self, Dependency, Kind};
use pgferry::pg::{catalog, Psql};
use pgferry::settings::names::QualifiedName;
use pgferry::settings::receiver::OnSchemaChange;

use crate::load::refused::Refused;
use crate::load::schema_diff;

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

/// What a complete bundle does to the target, decided before anything changes.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One per table of the manifest, in its order.
    pub tables: Vec<TablePlan>,
    /// The objects the tables need that the target lacks, in creation order; those it has
    /// with the same definition are reused.
    pub create: Vec<Dependency>,
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

/// The plan of a complete bundle, or the refusal naming every table whose columns differ
/// and every type, domain, function, sequence or extension that differs or cannot be made.
pub fn complete(
    psql: &Psql,
    manifest: &Manifest,
    on_change: OnSchemaChange,
) -> anyhow::Result<Plan> {
    let (tables, mut problems) = tables(psql, manifest, on_change)?;
    let (create, dependency_problems) = dependencies(psql, &manifest.dependencies)?;
    problems.extend(dependency_problems);
    if !problems.is_empty() {
        return Err(Refused::Schema(problems.join("\n")).into());
    }
    Ok(Plan { tables, create })
}

/// The dependencies the target lacks (or, for a function, has in another version), and the
/// problems with the others: a type, domain, sequence or extension that differs (named like
/// a column difference), an extension the target cannot install.
fn dependencies(
    psql: &Psql,
    wanted: &[Dependency],
) -> anyhow::Result<(Vec<Dependency>, Vec<String>)> {
    let found = dependencies::on_target(psql, wanted)?;
    let missing_extensions: Vec<&str> = wanted
        .iter()
        .zip(&found)
        .filter(|(w, f)| w.kind == Kind::Extension && f.is_none())
        .map(|(w, _)| w.identity.as_str())
        .collect();
    let available = dependencies::available_extensions(psql, &missing_extensions)?;
    let mut create = Vec::new();
    let mut problems = Vec::new();
    for (wanted, found) in wanted.iter().zip(found) {
        match found {
            None if wanted.kind == Kind::Extension && !available.contains(&wanted.identity) => {
                problems.push(format!(
                    "extension {} is not installed on the target and cannot be: it is not available there; hint: install the package that provides it on the target server (for the contrib extensions: postgresql-contrib)",
                    wanted.identity
                ))
            }
            None => create.push(wanted.clone()),
            Some(found) if found.ddl == wanted.ddl => {}
            // Functions change on the primary as the application does; their DDL is
            // CREATE OR REPLACE, so the copy follows. PostgreSQL refuses a replacement
            // that changes the return type, which then fails the load by name.
            Some(_) if wanted.kind == Kind::Function => {
                tracing::info!(function = %wanted.identity, "the function differs on the target; replacing it with the bundle's");
                create.push(wanted.clone());
            }
            Some(found) => problems.push(format!(
                "{} {} on the target differs from the bundle: the bundle has `{}`, the target `{}`\nhint: alter or drop it on the target to match",
                wanted.kind,
                wanted.identity,
                one_line(&wanted.ddl),
                one_line(&found.ddl)
            )),
        }
    }
    Ok((create, problems))
}

/// A definition on one line, for a message.
fn one_line(ddl: &str) -> String {
    ddl.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The actions for the tables, and the problems: each table whose columns differ.
fn tables(
    psql: &Psql,
    manifest: &Manifest,
    on_change: OnSchemaChange,
) -> anyhow::Result<(Vec<TablePlan>, Vec<String>)> {
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
    Ok((plans, problems))
}
