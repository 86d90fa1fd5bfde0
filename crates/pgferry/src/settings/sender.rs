//! The sender's configuration file (SPEC "Configuration", `config/sender.toml`).

use std::path::PathBuf;

use serde::Deserialize;

use super::alerts::AlertSettings;
use super::bundle_keys::SealSettings;
use super::connection::{libpq_section, PortValue};
use super::names::{ColumnRef, TablePattern};
pub use super::store::{Remote, S3Remote, SftpRemote};
use super::values::{Duration, Schedule, Size};
use crate::bundle::Compression;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderSettings {
    pub source: Source,
    pub partial: PartialSettings,
    #[serde(default)]
    pub files: Vec<SenderFileSet>,
    pub remote: Remote,
    /// `compression = "zstd"`, or `[compression]` with `codec` and `level`; default gzip 2.
    #[serde(default)]
    pub compression: Compression,
    /// `[bundle]`: the signing key and the encryption recipients.
    #[serde(default)]
    pub bundle: SealSettings,
    pub state: StateSettings,
    pub alerts: AlertSettings,
    pub schedule: SenderSchedule,
    #[serde(default)]
    pub metrics: Option<super::metrics::MetricsSettings>,
    /// The file these settings were read from, for errors that name a key in it.
    #[serde(skip)]
    pub path: PathBuf,
}

libpq_section! {
    /// `[source]`: the primary database and the tables of complete bundles.
    Source {
        pub tables: Vec<TablePattern>,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialSettings {
    pub overlap: Duration,
    #[serde(default)]
    pub window: Option<Duration>,
    #[serde(default)]
    pub tables: Vec<PartialTable>,
    /// Where a partial's changes come from.
    #[serde(default)]
    pub source: ChangeSource,
    /// `logical`: the replication slot the changes are read from.
    #[serde(default = "default_slot")]
    pub slot: String,
    /// `logical`: the publication over the complete tables that the slot reads.
    #[serde(default = "default_slot")]
    pub publication: String,
    /// `logical`: above this much WAL held back by the slot, the partial job alerts.
    #[serde(default = "default_max_retained_wal")]
    pub max_retained_wal: Size,
}

/// `[partial] source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// Rows whose `changed_at` column moved inside the window.
    #[default]
    ChangedAt,
    /// Every insert, update, delete and truncate, from a logical replication slot.
    Logical,
}

fn default_slot() -> String {
    "pgferry".to_string()
}

fn default_max_retained_wal() -> Size {
    Size(4 << 30)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialTable {
    pub table: TablePattern,
    pub changed_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderFileSet {
    pub name: String,
    pub dir: PathBuf,
    #[serde(default = "include_everything")]
    pub include: Vec<String>,
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub referenced_by: Vec<ColumnRef>,
}

fn include_everything() -> Vec<String> {
    vec!["*".to_string()]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderSchedule {
    pub complete: Schedule,
    pub partial: Schedule,
    pub check_remote: Schedule,
}
