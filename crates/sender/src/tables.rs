//! Resolves the configured table names and patterns against the source catalog.

use std::path::Path;

use pgferry::pg::catalog::{self, PartitionMember};
use pgferry::pg::Psql;
use pgferry::settings::names::{resolve, QualifiedName};
use pgferry::settings::{ConfigError, SenderSettings};

/// The tables of complete bundles. A pattern that matches nothing is a config error.
/// A partition tree travels whole: naming its root, any of its partitions, or both brings
/// the root and every partition, the root first and each level before the next, so the
/// target creates parents before partitions and every row is copied once, from the
/// partition that holds it.
pub fn complete_tables(
    settings: &SenderSettings,
    catalog_tables: &[QualifiedName],
    trees: &[PartitionMember],
) -> Result<Vec<QualifiedName>, ConfigError> {
    let named = resolve(&settings.source.tables, catalog_tables).map_err(|(index, pattern)| {
        no_match(
            &settings.path,
            &format!("source.tables[{index}]"),
            &pattern.to_string(),
        )
    })?;
    Ok(with_whole_partition_trees(named, trees))
}

fn with_whole_partition_trees(
    named: Vec<QualifiedName>,
    trees: &[PartitionMember],
) -> Vec<QualifiedName> {
    let mut tables = Vec::with_capacity(named.len());
    for table in named {
        let root = trees.iter().find(|m| m.table == table).map(|m| &m.root);
        let members: Vec<QualifiedName> = match root {
            Some(root) => trees
                .iter()
                .filter(|m| &m.root == root)
                .map(|m| m.table.clone())
                .collect(),
            None => vec![table],
        };
        for member in members {
            if !tables.contains(&member) {
                tables.push(member);
            }
        }
    }
    tables
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

#[cfg(test)]
mod tests {
    use super::*;

    fn member(table: &str, root: &str, depth: i32) -> PartitionMember {
        PartitionMember {
            table: QualifiedName::new("public", table),
            root: QualifiedName::new("public", root),
            depth,
        }
    }

    #[test]
    fn a_partition_tree_travels_whole_root_first_whatever_names_it() {
        let trees = vec![
            member("events", "events", 0),
            member("events_2025", "events", 1),
            member("events_default", "events", 1),
        ];
        let names = |tables: Vec<QualifiedName>| -> Vec<String> {
            tables.into_iter().map(|t| t.name).collect()
        };
        let expected = ["other", "events", "events_2025", "events_default"];
        for named in [
            vec!["other", "events"],
            vec!["other", "events_default"],
            vec!["other", "events_default", "events", "events_2025"],
        ] {
            let named = named
                .iter()
                .map(|n| QualifiedName::new("public", n))
                .collect();
            assert_eq!(names(with_whole_partition_trees(named, &trees)), expected);
        }
    }
}
