//! Resolves the configured table names and patterns against the source catalog.

use std::path::Path;

use pgferry::pg::{catalog, Psql};
use pgferry::settings::names::{resolve, QualifiedName};
use pgferry::settings::{ConfigError, SenderSettings};

/// The tables of complete bundles. A pattern that matches nothing is a config error.
pub fn complete_tables(
    settings: &SenderSettings,
    config: &Path,
    catalog_tables: &[QualifiedName],
) -> Result<Vec<QualifiedName>, ConfigError> {
    resolve(&settings.source.tables, catalog_tables).map_err(|(index, pattern)| {
        no_match(
            config,
            &format!("source.tables[{index}]"),
            &pattern.to_string(),
        )
    })
}

pub fn no_match(config: &Path, key: &str, pattern: &str) -> ConfigError {
    ConfigError::new(
        config,
        key,
        format!("{pattern:?} matches no table in the source database; hint: names are case-sensitive, as the catalog spells them"),
    )
}

/// The catalog's tables, for resolution.
pub fn catalog_tables(psql: &Psql) -> anyhow::Result<Vec<QualifiedName>> {
    catalog::tables(psql)
}
