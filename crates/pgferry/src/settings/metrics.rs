//! `[metrics]` (both sides, optional): where the node_exporter textfile goes.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Rewritten atomically after every job; node_exporter's textfile collector reads the
    /// `*.prom` files of its directory.
    pub textfile: PathBuf,
}
