//! The receiver's configuration file (SPEC "Configuration", `config/receiver.toml`).

use std::path::PathBuf;

use serde::Deserialize;

use super::alerts::AlertSettings;
use super::bundle_keys::OpenSettings;
use super::connection::{libpq_section, PortValue};
use super::sender::StateSettings;
pub use super::store::Inbox;
use super::values::{Duration, Schedule};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSettings {
    pub target: Target,
    pub inbox: Inbox,
    #[serde(default)]
    pub files: Vec<ReceiverFileSet>,
    pub retention: Retention,
    #[serde(default)]
    pub postprocess: Option<Postprocess>,
    #[serde(default)]
    pub complete: CompleteSettings,
    /// `[bundle]`: the keys bundles must be signed by, and the identities that open them.
    #[serde(default)]
    pub bundle: OpenSettings,
    pub state: StateSettings,
    pub alerts: AlertSettings,
    pub schedule: ReceiverSchedule,
    #[serde(default)]
    pub metrics: Option<super::metrics::MetricsSettings>,
    /// The file these settings were read from, for errors that name a key in it.
    #[serde(skip)]
    pub path: PathBuf,
}

libpq_section! {
    /// `[target]`: the secondary database.
    Target {}
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverFileSet {
    pub name: String,
    pub dir: PathBuf,
    #[serde(default)]
    pub overwrite: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub complete: Duration,
    pub partial: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postprocess {
    pub command: Vec<String>,
    #[serde(default = "ten_minutes")]
    pub timeout: Duration,
}

fn ten_minutes() -> Duration {
    Duration(std::time::Duration::from_secs(600))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSchemaChange {
    #[default]
    Fail,
    Recreate,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompleteSettings {
    #[serde(default)]
    pub on_schema_change: OnSchemaChange,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSchedule {
    pub load: Schedule,
    pub prune: Schedule,
    pub stale_after: Duration,
}
