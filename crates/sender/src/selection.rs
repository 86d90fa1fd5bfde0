//! Which rows a partial bundle sends: the rows of each partial table whose `changed_at` is
//! in the window, and, following foreign keys to any depth and across schemas, the rows of
//! other tables that those rows reference. Each table gets one SQL predicate, evaluated in
//! the bundle's snapshot; cycles are cut where they would repeat a table on the path, and a
//! table that references itself selects its ancestors with a recursive query.

use std::collections::{BTreeMap, BTreeSet};

use pgferry::pg::catalog::ForeignKey;
use pgferry::pg::ident::{quote_ident, quote_literal};
use pgferry::settings::names::QualifiedName;

use crate::window::Window;

/// A table to send, and the predicate (over alias `t0`) that picks its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub table: QualifiedName,
    pub predicate: String,
    /// Sent only because sent rows reference it.
    pub parent: bool,
}

/// A partial table and its `changed_at` column.
#[derive(Debug, Clone)]
pub struct PartialTable {
    pub table: QualifiedName,
    pub changed_at: String,
}

struct Planner<'a> {
    partial: &'a [PartialTable],
    fks: Vec<&'a ForeignKey>,
    window: Window,
}

/// Every table the partial sends, parents before children.
pub fn select(partial: &[PartialTable], fks: &[ForeignKey], window: Window) -> Vec<Selected> {
    let tables = closure(partial, fks);
    let planner = Planner {
        partial,
        fks: fks
            .iter()
            .filter(|fk| tables.contains(&fk.child) && tables.contains(&fk.parent))
            .collect(),
        window,
    };
    let mut selected: Vec<Selected> = Vec::new();
    for table in parents_first(&tables, &planner.fks) {
        let Some(predicate) = planner.predicate(&table, "t0", &mut vec![table.clone()]) else {
            continue;
        };
        let parent = !partial.iter().any(|p| p.table == table);
        selected.push(Selected {
            table,
            predicate,
            parent,
        });
    }
    selected
}

/// The partial tables and every table they reference, transitively.
fn closure(partial: &[PartialTable], fks: &[ForeignKey]) -> BTreeSet<QualifiedName> {
    let mut tables: BTreeSet<QualifiedName> = partial.iter().map(|p| p.table.clone()).collect();
    loop {
        let before = tables.len();
        for fk in fks {
            if tables.contains(&fk.child) {
                tables.insert(fk.parent.clone());
            }
        }
        if tables.len() == before {
            return tables;
        }
    }
}

/// Topological order by foreign keys; the members of a cycle follow in name order.
fn parents_first(tables: &BTreeSet<QualifiedName>, fks: &[&ForeignKey]) -> Vec<QualifiedName> {
    let mut waiting: BTreeMap<&QualifiedName, BTreeSet<&QualifiedName>> =
        tables.iter().map(|t| (t, BTreeSet::new())).collect();
    for fk in fks {
        if fk.child != fk.parent {
            if let Some(parents) = waiting.get_mut(&fk.child) {
                parents.insert(&fk.parent);
            }
        }
    }
    let mut order = Vec::new();
    while !waiting.is_empty() {
        let ready: Vec<&QualifiedName> = waiting
            .iter()
            .filter(|(_, parents)| parents.is_empty())
            .map(|(t, _)| *t)
            .collect();
        let next = if ready.is_empty() {
            // A cycle: take the first remaining table to break it.
            waiting.keys().next().copied().into_iter().collect()
        } else {
            ready
        };
        for table in next {
            waiting.remove(table);
            for parents in waiting.values_mut() {
                parents.remove(table);
            }
            order.push(table.clone());
        }
    }
    order
}

/// One way a table's rows are picked, as SQL over the alias it is given.
type Part<'a> = Box<dyn Fn(&str) -> String + 'a>;

/// Rows matching any of `parts`, over `alias`. Written as a plain `OR`, PostgreSQL cannot
/// use an index for an `IN (subquery)` branch and reads the whole table: the cost of a
/// partial would follow the table's size instead of the changes. So each part picks its
/// rows' `ctid`s on its own (each with its index), and a TID scan fetches them. The `OR`
/// still filters what the TID scan returns: in a partitioned table a `ctid` is unique
/// only within its partition.
fn any_of(table: &QualifiedName, alias: &str, depth: usize, parts: &[Part<'_>]) -> String {
    let u = format!("u{depth}");
    let branches: Vec<String> = parts
        .iter()
        .map(|part| {
            format!(
                "SELECT {u}.ctid FROM {} AS {u} WHERE {}",
                table.quoted(),
                part(&u)
            )
        })
        .collect();
    let any: Vec<String> = parts.iter().map(|part| part(alias)).collect();
    format!(
        "({alias}.ctid = ANY (ARRAY({})) AND ({}))",
        branches.join(" UNION "),
        any.join(" OR ")
    )
}

fn columns(alias: &str, names: &[String]) -> String {
    let list: Vec<String> = names
        .iter()
        .map(|c| format!("{alias}.{}", quote_ident(c)))
        .collect();
    format!("({})", list.join(", "))
}

impl Planner<'_> {
    fn window_predicate(&self, alias: &str, column: &str) -> String {
        let column = format!("{alias}.{}", quote_ident(column));
        format!(
            "({column} > {}::timestamptz AND {column} <= {}::timestamptz)",
            quote_literal(&self.window.start.to_rfc3339()),
            quote_literal(&self.window.end.to_rfc3339())
        )
    }

    /// The predicate over `alias` that picks `table`'s rows, or None when it sends none.
    fn predicate(
        &self,
        table: &QualifiedName,
        alias: &str,
        path: &mut Vec<QualifiedName>,
    ) -> Option<String> {
        let references_itself = self
            .fks
            .iter()
            .any(|fk| &fk.parent == table && &fk.child == table);
        if !references_itself {
            return self.base(table, alias, path);
        }
        let inner = format!("s{}", path.len());
        let base = self.base(table, &inner, path)?;
        Some(self.with_ancestors(table, alias, &inner, base))
    }

    /// The rows picked by the window and by referencing children, over `alias`.
    fn base(
        &self,
        table: &QualifiedName,
        alias: &str,
        path: &mut Vec<QualifiedName>,
    ) -> Option<String> {
        // Each part is rendered over an alias; the children's predicates are made once.
        let mut parts: Vec<Part<'_>> = Vec::new();
        for partial in self.partial.iter().filter(|p| &p.table == table) {
            parts.push(Box::new(move |a: &str| {
                self.window_predicate(a, &partial.changed_at)
            }));
        }
        let depth = path.len();
        for fk in self
            .fks
            .iter()
            .filter(|fk| &fk.parent == table && &fk.child != table)
        {
            if path.contains(&fk.child) {
                continue;
            }
            let child_alias = format!("t{depth}");
            path.push(fk.child.clone());
            let child = self.predicate(&fk.child, &child_alias, path);
            path.pop();
            if let Some(child) = child {
                let picked = format!(
                    "(SELECT {} FROM {} AS {child_alias} WHERE {child})",
                    columns(&child_alias, &fk.child_columns)
                        .trim_start_matches('(')
                        .trim_end_matches(')'),
                    fk.child.quoted()
                );
                parts.push(Box::new(move |a: &str| {
                    format!("{} IN {picked}", columns(a, &fk.parent_columns))
                }));
            }
        }
        match parts.len() {
            0 => None,
            1 => Some(parts[0](alias)),
            _ => Some(any_of(table, alias, depth, &parts)),
        }
    }

    /// For a table that references itself: the rows `base` picks over alias `s`, and their
    /// ancestors, as a predicate over `alias`.
    fn with_ancestors(&self, table: &QualifiedName, alias: &str, s: &str, base: String) -> String {
        let own: Vec<&&ForeignKey> = self
            .fks
            .iter()
            .filter(|fk| &fk.parent == table && &fk.child == table)
            .collect();
        let Some(first) = own.first() else {
            return base;
        };
        let same_target: Vec<&&ForeignKey> = own
            .iter()
            .copied()
            .filter(|fk| fk.parent_columns == first.parent_columns)
            .collect();
        let refs = &first.parent_columns;
        let r: Vec<String> = (0..refs.len()).map(|i| format!("r{i}")).collect();
        let mut f_names = Vec::new();
        let mut f_sources = Vec::new();
        let mut joins = Vec::new();
        for (k, fk) in same_target.iter().enumerate() {
            let names: Vec<String> = (0..fk.child_columns.len())
                .map(|i| format!("f{k}_{i}"))
                .collect();
            joins.push(format!(
                "{} = ({})",
                columns("n", refs),
                names
                    .iter()
                    .map(|n| format!("sel.{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            f_names.extend(names);
            f_sources.push(fk.child_columns.clone());
        }
        let all_sources: Vec<String> = f_sources.into_iter().flatten().collect();
        let pick = |a: &str| -> String {
            let refs: Vec<String> = refs
                .iter()
                .chain(all_sources.iter())
                .map(|c| format!("{a}.{}", quote_ident(c)))
                .collect();
            refs.join(", ")
        };
        format!(
            "{} IN (WITH RECURSIVE sel({}, {}) AS (SELECT {} FROM {} AS {s} WHERE {base} UNION SELECT {} FROM {} AS n JOIN sel ON {}) SELECT {} FROM sel)",
            columns(alias, refs),
            r.join(", "),
            f_names.join(", "),
            pick(s),
            table.quoted(),
            pick("n"),
            table.quoted(),
            joins.join(" OR "),
            r.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn t(name: &str) -> QualifiedName {
        QualifiedName::new("public", name)
    }

    fn fk(child: &str, col: &str, parent: &str) -> ForeignKey {
        ForeignKey {
            child: t(child),
            child_columns: vec![col.into()],
            parent: t(parent),
            parent_columns: vec!["id".into()],
        }
    }

    fn window() -> Window {
        Window {
            start: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .to_utc(),
            end: DateTime::parse_from_rfc3339("2026-01-01T01:00:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    #[test]
    fn parents_come_first_three_levels_deep() {
        let partial = vec![PartialTable {
            table: t("event"),
            changed_at: "timeStamp".into(),
        }];
        let fks = vec![
            fk("event", "assignment_id", "assignment"),
            fk("assignment", "bus_id", "bus"),
            fk("other", "x", "bus"),
        ];
        let selected = select(&partial, &fks, window());
        let names: Vec<String> = selected.iter().map(|s| s.table.name.clone()).collect();
        assert_eq!(names, vec!["bus", "assignment", "event"]);
        assert!(selected[0].parent && selected[1].parent && !selected[2].parent);
        // The bus predicate reaches the events through the assignments.
        assert!(
            selected[0]
                .predicate
                .contains("FROM \"public\".\"assignment\" AS t1"),
            "{}",
            selected[0].predicate
        );
        assert!(
            selected[0]
                .predicate
                .contains("FROM \"public\".\"event\" AS t2"),
            "{}",
            selected[0].predicate
        );
        assert!(!selected[0].predicate.contains("other"));
    }

    #[test]
    fn cycles_terminate() {
        let partial = vec![PartialTable {
            table: t("a"),
            changed_at: "c".into(),
        }];
        let fks = vec![
            fk("a", "b_id", "b"),
            fk("b", "a_id", "a"),
            fk("a", "parent_id", "a"),
        ];
        let selected = select(&partial, &fks, window());
        assert_eq!(selected.len(), 2);
        let a = selected.iter().find(|s| s.table == t("a")).unwrap();
        assert!(a.predicate.contains("WITH RECURSIVE"), "{}", a.predicate);
    }

    #[test]
    fn a_table_picked_two_ways_is_read_by_ctid_not_by_a_full_scan() {
        let partial = vec![
            PartialTable {
                table: t("bus"),
                changed_at: "timeStamp".into(),
            },
            PartialTable {
                table: t("event"),
                changed_at: "timeStamp".into(),
            },
        ];
        let fks = vec![fk("event", "bus_id", "bus")];
        let selected = select(&partial, &fks, window());
        let bus = &selected[0];
        assert_eq!(bus.table, t("bus"));
        assert!(
            bus.predicate.starts_with("(t0.ctid = ANY (ARRAY(SELECT u1.ctid FROM \"public\".\"bus\" AS u1 WHERE (u1.\"timeStamp\" > "),
            "{}",
            bus.predicate
        );
        assert!(
            bus.predicate.contains(" UNION SELECT u1.ctid FROM \"public\".\"bus\" AS u1 WHERE (u1.\"id\") IN (SELECT t1.\"bus_id\" FROM \"public\".\"event\" AS t1 WHERE "),
            "{}",
            bus.predicate
        );
        // The event rows are picked by their window alone: no rewrite.
        assert!(
            !selected[1].predicate.contains("ctid"),
            "{}",
            selected[1].predicate
        );
    }
}
