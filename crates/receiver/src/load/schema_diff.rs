//! Compares a table's columns on the target with the bundle's (guarantee 6).

use pgferry::pg::catalog::Column;
use pgferry::settings::names::QualifiedName;

/// The differences, in words, or an empty list when the columns match by name and type.
pub fn differences(bundle: &[Column], target: &[Column]) -> Vec<String> {
    let mut found = Vec::new();
    for column in bundle {
        match target.iter().find(|c| c.name == column.name) {
            None => found.push(format!(
                "column {:?} ({}) is missing on the target",
                column.name, column.type_name
            )),
            Some(t) if t.type_name != column.type_name => found.push(format!(
                "column {:?} is {} on the target but {} in the bundle",
                column.name, t.type_name, column.type_name
            )),
            Some(_) => {}
        }
    }
    for column in target {
        if !bundle.iter().any(|c| c.name == column.name) {
            found.push(format!(
                "column {:?} ({}) exists only on the target",
                column.name, column.type_name
            ));
        }
    }
    found
}

/// The error text for a table whose columns differ.
pub fn describe(table: &QualifiedName, differences: &[String]) -> String {
    format!(
        "table {table} on the target differs from the bundle: {}\nhint: alter the target table to match, or set [complete] on_schema_change = \"recreate\" to drop and recreate it from the next complete bundle",
        differences.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, type_name: &str) -> Column {
        Column::new(name, type_name)
    }

    #[test]
    fn every_kind_of_difference_is_named() {
        let bundle = vec![
            col("id", "integer"),
            col("plate", "text"),
            col("seen", "timestamp with time zone"),
        ];
        let target = vec![
            col("id", "bigint"),
            col("seen", "timestamp with time zone"),
            col("extra", "text"),
        ];
        assert_eq!(
            differences(&bundle, &target),
            vec![
                "column \"id\" is bigint on the target but integer in the bundle",
                "column \"plate\" (text) is missing on the target",
                "column \"extra\" (text) exists only on the target",
            ]
        );
        assert!(differences(&bundle, &bundle).is_empty());
    }
}
