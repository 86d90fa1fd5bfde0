//! Catalog questions both sides ask: which tables exist, their columns, keys and indexes.

use serde::{Deserialize, Serialize};

use super::Psql;
use crate::pg::ident::quote_literal;
use crate::settings::names::QualifiedName;

/// The user tables of the database (ordinary and partitioned), outside system schemas.
pub fn tables(psql: &Psql) -> anyhow::Result<Vec<QualifiedName>> {
    let rows: Option<Vec<QualifiedName>> = psql.json(TABLES_SQL)?;
    Ok(rows.unwrap_or_default())
}

/// The query behind [`tables`], for use in a [`super::Session`]; answers JSON or NULL.
pub const TABLES_SQL: &str = "SELECT json_agg(json_build_object('schema', n.nspname, 'name', c.relname) ORDER BY n.nspname, c.relname) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' AND n.nspname <> 'pgferry'";

/// About the bytes `tables` take on disk (heap and TOAST pages as the catalog last counted
/// them): roughly what their data dump will be, for a progress bar. Read from `pg_class`
/// alone, so it never waits for a lock on a table (`pg_table_size` would).
pub fn tables_size_sql(tables: &[QualifiedName]) -> String {
    let list = tables.iter().map(regclass).collect::<Vec<_>>().join(", ");
    format!(
        "SELECT COALESCE(sum(c.relpages::bigint + COALESCE(t.relpages, 0)), 0) * current_setting('block_size')::bigint \
         FROM pg_class c LEFT JOIN pg_class t ON t.oid = c.reltoastrelid \
         WHERE c.oid = ANY (ARRAY[{list}]::oid[])"
    )
}

/// A table of a partition tree: the partitioned root, its partitions, theirs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionMember {
    pub table: QualifiedName,
    pub root: QualifiedName,
    /// 0 for the root, 1 for its partitions, and so on.
    pub depth: i32,
}

/// Every member of every partition tree, each tree's root first, then by depth and name;
/// answers JSON or NULL.
pub const PARTITION_TREES_SQL: &str = "SELECT json_agg(json_build_object(\
           'table', json_build_object('schema', mn.nspname, 'name', m.relname), \
           'root', json_build_object('schema', rn.nspname, 'name', r.relname), \
           'depth', t.level) ORDER BY rn.nspname, r.relname, t.level, mn.nspname, m.relname) \
         FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace, \
              pg_partition_tree(r.oid) t JOIN pg_class m ON m.oid = t.relid JOIN pg_namespace mn ON mn.oid = m.relnamespace \
         WHERE r.relkind = 'p' AND NOT r.relispartition AND m.relkind IN ('r', 'p')";

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type` of the column, e.g. `timestamp with time zone`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Computed by the table (`GENERATED ALWAYS AS (...) STORED`): never written to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
    /// `GENERATED ALWAYS AS IDENTITY`: written only with `OVERRIDING SYSTEM VALUE`, and
    /// never updated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub identity_always: bool,
}

impl Column {
    /// A plain column, as tests and the fuzzer build them.
    pub fn new(name: &str, type_name: &str) -> Column {
        Column {
            name: name.into(),
            type_name: type_name.into(),
            generated: false,
            identity_always: false,
        }
    }
}

/// What `check` and the loaders need to know about one table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TableInfo {
    pub columns: Vec<Column>,
    /// Columns of the primary key, or else of a unique index on not-null columns.
    pub key: Option<Vec<String>>,
    /// Columns that lead at least one index.
    pub indexed_first: Vec<String>,
}

/// The catalog expression for a table's OID, from its exact name.
pub fn regclass(table: &QualifiedName) -> String {
    format!("{}::regclass", quote_literal(&table.quoted()))
}

/// Columns, key and leading index columns of `table`, or None when it does not exist.
pub fn table_info(psql: &Psql, table: &QualifiedName) -> anyhow::Result<Option<TableInfo>> {
    psql.json(&table_info_sql(table))
}

/// [`table_info`] of each of `tables`, in their order, in one query: every `psql` run
/// costs a server connection (~50 ms), which a bundle of many tables would pay each time.
pub fn tables_info(
    psql: &Psql,
    tables: &[QualifiedName],
) -> anyhow::Result<Vec<Option<TableInfo>>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<String> = tables
        .iter()
        .enumerate()
        .map(|(n, table)| format!("({n}, ({}))", table_info_sql(table)))
        .collect();
    let sql = format!(
        "SELECT json_agg(info ORDER BY n) FROM (VALUES {}) AS v(n, info)",
        rows.join(", ")
    );
    let infos: Option<Vec<Option<TableInfo>>> = psql.json(&sql)?;
    let infos = infos.unwrap_or_default();
    if infos.len() != tables.len() {
        anyhow::bail!(
            "asked {} for {} tables, got {} answers",
            psql.connection.describe(),
            tables.len(),
            infos.len()
        );
    }
    Ok(infos)
}

/// The query behind [`table_info`]; answers JSON, or NULL when the table does not exist.
pub fn table_info_sql(table: &QualifiedName) -> String {
    let literal = quote_literal(&table.quoted());
    format!(
        "SELECT CASE WHEN to_regclass({literal}) IS NULL THEN NULL ELSE json_build_object(\
           'columns', (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'generated', a.attgenerated <> '', 'identity_always', a.attidentity = 'a') ORDER BY a.attnum) \
                       FROM pg_attribute a WHERE a.attrelid = to_regclass({literal}) AND a.attnum > 0 AND NOT a.attisdropped), \
           'key', (SELECT json_agg(a.attname ORDER BY k.ord) FROM \
                     (SELECT i.indkey FROM pg_index i WHERE i.indrelid = to_regclass({literal}) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
                        AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) col JOIN pg_attribute na ON na.attrelid = i.indrelid AND na.attnum = col WHERE NOT na.attnotnull) \
                      ORDER BY i.indisprimary DESC, i.indnatts LIMIT 1) best, \
                     unnest(best.indkey) WITH ORDINALITY AS k(attnum, ord) \
                     JOIN pg_attribute a ON a.attrelid = to_regclass({literal}) AND a.attnum = k.attnum), \
           'indexed_first', COALESCE((SELECT json_agg(DISTINCT a.attname) FROM pg_index i \
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
                     WHERE i.indrelid = to_regclass({literal})), '[]'::json)) END"
    )
}

/// A foreign key: `child.child_columns` references `parent.parent_columns`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ForeignKey {
    pub child: QualifiedName,
    pub child_columns: Vec<String>,
    pub parent: QualifiedName,
    pub parent_columns: Vec<String>,
}

/// Every foreign key of the database (on partitioned tables, the parent's only); answers
/// JSON or NULL.
pub const FOREIGN_KEYS_SQL: &str = "SELECT json_agg(json_build_object(\
    'child', json_build_object('schema', cn.nspname, 'name', c.relname), \
    'child_columns', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum), \
    'parent', json_build_object('schema', pn.nspname, 'name', p.relname), \
    'parent_columns', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) \
                      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum)) \
    ORDER BY cn.nspname, c.relname, con.conname) \
    FROM pg_constraint con \
    JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
    JOIN pg_class p ON p.oid = con.confrelid JOIN pg_namespace pn ON pn.oid = p.relnamespace \
    WHERE con.contype = 'f' AND con.conparentid = 0";
