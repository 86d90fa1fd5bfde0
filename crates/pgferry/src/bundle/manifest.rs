//! The manifest: what a bundle holds and where it came from (guarantee 2).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::pg::dependencies::Dependency;

use crate::pg::catalog::Column;
use crate::settings::names::QualifiedName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Complete,
    Partial,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Complete => "complete",
            Kind::Partial => "partial",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub name: String,
    pub kind: Kind,
    pub created_at: DateTime<Utc>,
    pub source: Source,
    /// When the database snapshot the bundle was read from was taken.
    pub snapshot_time: DateTime<Utc>,
    /// The partial window `(start, end]`; `None` for a complete bundle.
    pub window: Option<Window>,
    pub tables: Vec<TableManifest>,
    /// What the tables need besides their own DDL (complete bundles), in creation order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// With `[partial] source = "logical"`: the positions of the slot's stream the bundle
    /// covers. A complete holds every change before `start` (= `end`); a partial carries
    /// the changes from `start` to `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotRange>,
    pub file_sets: Vec<FileSetManifest>,
    pub entries: Vec<Entry>,
}

/// Positions in a replication slot's stream, as PostgreSQL writes them (`16/B374D848`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotRange {
    pub name: String,
    pub start: String,
    pub end: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub host: String,
    pub dbname: String,
    pub server_version: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableManifest {
    pub table: QualifiedName,
    pub rows: u64,
    pub columns: Vec<Column>,
    /// Key columns rows are upserted by (partial bundles).
    pub key: Option<Vec<String>>,
    /// Sent only because sent rows reference it (partial bundles).
    pub parent: bool,
    /// Entry holding the DDL that creates the table, before data.
    pub schema_pre: Option<String>,
    /// Entry holding indexes and constraints, after data.
    pub schema_post: Option<String>,
}

impl TableManifest {
    /// A table as the catalog describes it, before its rows are counted or its schema
    /// entries written.
    pub fn described(table: QualifiedName, info: crate::pg::catalog::TableInfo) -> TableManifest {
        TableManifest {
            table,
            rows: 0,
            columns: info.columns,
            key: info.key,
            parent: false,
            schema_pre: None,
            schema_post: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSetManifest {
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    /// Files named by `referenced_by` columns that did not exist on the sender.
    pub missing: Vec<String>,
}

/// One archive entry with its size and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// Total bytes of the files the bundle installs.
    pub fn file_bytes(&self) -> u64 {
        self.file_sets.iter().map(|s| s.bytes).sum()
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}
