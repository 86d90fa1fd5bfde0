//! The SQL of a partial load: each table's rows go into a temporary staging table, then
//! are upserted by key into the real one, columns matched by name (guarantee 5).

use pgferry::bundle::manifest::TableManifest;
use pgferry::pg::ident::quote_ident;

pub fn stage_name(index: usize) -> String {
    format!("pgferry_stage_{index}")
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates the staging table, shaped like the target table.
pub fn create_stage(index: usize, table: &TableManifest) -> String {
    format!(
        "CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP;\n",
        stage_name(index),
        table.table.quoted()
    )
}

/// Starts the inline COPY of `columns` (from the CSV header) into the staging table.
pub fn copy_into_stage(index: usize, columns: &[String]) -> String {
    format!(
        "COPY {} ({}) FROM STDIN;\n",
        stage_name(index),
        column_list(columns)
    )
}

/// Moves the staged rows into the table: insert, or update the row with the same key.
/// Generated columns are the table's to compute, so they are left out; identity columns
/// that are `GENERATED ALWAYS` take the primary's values (`OVERRIDING SYSTEM VALUE`) and
/// are never updated, which PostgreSQL refuses.
pub fn upsert(index: usize, table: &TableManifest, columns: &[String], key: &[String]) -> String {
    let column = |name: &String| table.columns.iter().find(|c| &c.name == name);
    let written: Vec<String> = columns
        .iter()
        .filter(|c| !column(c).is_some_and(|c| c.generated))
        .cloned()
        .collect();
    let list = column_list(&written);
    let updates: Vec<String> = written
        .iter()
        .filter(|c| !key.contains(c) && !column(c).is_some_and(|c| c.identity_always))
        .map(|c| format!("{0} = EXCLUDED.{0}", quote_ident(c)))
        .collect();
    let action = if updates.is_empty() {
        "NOTHING".to_string()
    } else {
        format!("UPDATE SET {}", updates.join(", "))
    };
    format!(
        "INSERT INTO {} ({list}) OVERRIDING SYSTEM VALUE SELECT {list} FROM {} ON CONFLICT ({}) DO {action};\n",
        table.table.quoted(),
        stage_name(index),
        column_list(key)
    )
}
