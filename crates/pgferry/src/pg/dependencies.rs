//! What a complete bundle's tables need besides their own DDL: the extensions, enum and
//! composite types, domains, functions and shared sequences their columns, defaults,
//! checks, generated columns, indexes and triggers use (`pg_dump -t` leaves them out). Both
//! sides describe such an object with the same SQL, under an empty `search_path` so every
//! name is qualified: the sender to carry it, the receiver to tell whether the target has
//! it already, the same (reused) or different (a schema difference).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Psql, Session};
use crate::pg::ident::quote_literal;
use crate::settings::names::QualifiedName;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Extension,
    /// An enum or composite type.
    Type,
    Domain,
    Function,
    Sequence,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Extension => "extension",
            Kind::Type => "type",
            Kind::Domain => "domain",
            Kind::Function => "function",
            Kind::Sequence => "sequence",
        })
    }
}

/// One object a bundle's tables need, as the source describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub kind: Kind,
    /// Its qualified name as the catalog prints it (`public.mood`,
    /// `public.double_it(integer)`, `citext` for an extension).
    pub identity: String,
    /// The schema it lives in, created on the target when missing.
    pub schema: String,
    /// What creates it; equal text on both sides means the same object.
    pub ddl: String,
    /// A sequence's value in the snapshot: set on the target with the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SequenceValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceValue {
    pub value: i64,
    pub called: bool,
}

/// A described object with its catalog key and the keys it depends on, for ordering.
#[derive(Debug, Deserialize)]
struct Described {
    key: String,
    #[serde(default)]
    deps: Vec<String>,
    #[serde(flatten)]
    dependency: Dependency,
}

/// Describes the objects that the query `objects` (columns `classid`, `objid`) yields.
fn describe_sql(objects: &str) -> String {
    format!(
        "WITH objs AS ({objects}), \
         described AS ( \
         SELECT 'extension' AS kind, e.extname::text AS identity, n.nspname::text AS schema, \
                format('CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA %I', e.extname, n.nspname) AS ddl, NULL::json AS value, o.classid, o.objid \
           FROM objs o JOIN pg_extension e ON o.classid = 'pg_extension'::regclass AND e.oid = o.objid \
           JOIN pg_namespace n ON n.oid = e.extnamespace \
         UNION ALL \
         SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, t.oid::regtype::text, n.nspname::text, \
                CASE t.typtype \
                  WHEN 'e' THEN format('CREATE TYPE %s AS ENUM (%s)', t.oid::regtype, \
                       (SELECT COALESCE(string_agg(quote_literal(l.enumlabel), ', ' ORDER BY l.enumsortorder), '') FROM pg_enum l WHERE l.enumtypid = t.oid)) \
                  WHEN 'c' THEN format('CREATE TYPE %s AS (%s)', t.oid::regtype, \
                       (SELECT COALESCE(string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)) \
                               || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation THEN ' COLLATE ' || a.attcollation::regcollation::text ELSE '' END, \
                               ', ' ORDER BY a.attnum), '') \
                          FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid \
                         WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)) \
                  ELSE format('CREATE DOMAIN %s AS %s', t.oid::regtype, format_type(t.typbasetype, t.typtypmod)) \
                       || CASE WHEN t.typcollation <> 0 AND t.typcollation <> bt.typcollation THEN ' COLLATE ' || t.typcollation::regcollation::text ELSE '' END \
                       || CASE WHEN t.typdefault IS NOT NULL THEN ' DEFAULT ' || t.typdefault ELSE '' END \
                       || CASE WHEN t.typnotnull THEN ' NOT NULL' ELSE '' END \
                       || COALESCE((SELECT string_agg(format(' CONSTRAINT %I %s', c.conname, pg_get_constraintdef(c.oid)), '' ORDER BY c.conname) \
                                      FROM pg_constraint c WHERE c.contypid = t.oid), '') \
                END, NULL::json, o.classid, o.objid \
           FROM objs o JOIN pg_type t ON o.classid = 'pg_type'::regclass AND t.oid = o.objid \
           JOIN pg_namespace n ON n.oid = t.typnamespace \
           LEFT JOIN pg_type bt ON bt.oid = t.typbasetype \
          WHERE t.typtype IN ('e', 'c', 'd') \
            AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') \
         UNION ALL \
         SELECT 'function', p.oid::regprocedure::text, n.nspname::text, pg_get_functiondef(p.oid), NULL::json, o.classid, o.objid \
           FROM objs o JOIN pg_proc p ON o.classid = 'pg_proc'::regclass AND p.oid = o.objid \
           JOIN pg_namespace n ON n.oid = p.pronamespace \
          WHERE p.prokind IN ('f', 'p') \
         UNION ALL \
         SELECT 'sequence', c.oid::regclass::text, n.nspname::text, \
                format('CREATE SEQUENCE %s AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s CACHE %s %s', \
                       c.oid::regclass, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart, s.seqcache, \
                       CASE WHEN s.seqcycle THEN 'CYCLE' ELSE 'NO CYCLE' END), \
                json_build_object('value', COALESCE(pg_sequence_last_value(c.oid), s.seqstart), 'called', pg_sequence_last_value(c.oid) IS NOT NULL), \
                o.classid, o.objid \
           FROM objs o JOIN pg_class c ON o.classid = 'pg_class'::regclass AND c.oid = o.objid AND c.relkind = 'S' \
           JOIN pg_sequence s ON s.seqrelid = c.oid \
           JOIN pg_namespace n ON n.oid = c.relnamespace) \
         SELECT COALESCE(json_agg(json_strip_nulls(json_build_object( \
                  'key', d.classid || '/' || d.objid, 'kind', d.kind, 'identity', d.identity, 'schema', d.schema, \
                  'ddl', d.ddl, 'value', d.value, \
                  'deps', ARRAY(SELECT DISTINCT x.refclassid || '/' || CASE WHEN x.refclassid = 'pg_type'::regclass \
                                  THEN COALESCE((SELECT NULLIF(typelem, 0) FROM pg_type WHERE oid = x.refobjid AND typcategory = 'A'), x.refobjid) \
                                  ELSE x.refobjid END \
                                FROM pg_depend x \
                               WHERE (x.classid = d.classid AND x.objid = d.objid) \
                                  OR (d.classid = 'pg_type'::regclass AND x.classid = 'pg_constraint'::regclass \
                                      AND x.objid IN (SELECT oid FROM pg_constraint WHERE contypid = d.objid)) \
                                  OR (d.classid = 'pg_type'::regclass AND x.classid = 'pg_class'::regclass \
                                      AND x.objid = (SELECT NULLIF(typrelid, 0) FROM pg_type WHERE oid = d.objid))))) \
                ORDER BY d.kind, d.identity), '[]') \
           FROM described d"
    )
}

/// The objects `tables` need, beyond what their own DDL creates: everything they depend on,
/// directly or through other such objects, that is neither built in nor a member of an
/// extension (the extension stands for it) nor a sequence the tables own.
fn needed_sql(tables: &[QualifiedName]) -> String {
    let roots = tables
        .iter()
        .map(|t| format!("{}::regclass::oid", quote_literal(&t.quoted())))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH RECURSIVE roots(oid) AS (SELECT unnest(ARRAY[{roots}]::oid[])), \
         walk(classid, objid) AS ( \
           SELECT 'pg_class'::regclass::oid, oid FROM roots \
           UNION \
           SELECT d.classid, d.objid FROM pg_depend d JOIN roots r \
             ON d.refclassid = 'pg_class'::regclass AND d.refobjid = r.oid AND d.deptype IN ('a', 'i') \
           UNION \
           SELECT n.classid, n.objid FROM walk w, LATERAL ( \
             SELECT d.refclassid AS classid, d.refobjid AS objid FROM pg_depend d \
              WHERE d.classid = w.classid AND d.objid = w.objid AND d.deptype IN ('n', 'a', 'i', 'e') \
                AND w.classid <> 'pg_extension'::regclass \
                AND NOT (w.classid = 'pg_class'::regclass AND w.objid NOT IN (SELECT oid FROM roots) \
                         AND (SELECT relkind FROM pg_class WHERE oid = w.objid) <> 'c') \
             UNION ALL \
             SELECT 'pg_class'::regclass::oid, t.typrelid FROM pg_type t \
              WHERE w.classid = 'pg_type'::regclass AND t.oid = w.objid AND t.typtype = 'c' AND t.typrelid <> 0 \
           ) n \
         ) \
         SELECT w.classid, w.objid FROM walk w \
          WHERE NOT EXISTS (SELECT 1 FROM pg_depend m WHERE m.classid = w.classid AND m.objid = w.objid AND m.deptype = 'e') \
            AND NOT (w.classid = 'pg_class'::regclass AND EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = w.classid \
                     AND o.objid = w.objid AND o.refclassid = 'pg_class'::regclass AND o.deptype IN ('a', 'i') \
                     AND o.refobjid IN (SELECT oid FROM roots))) \
            AND COALESCE((SELECT nspname FROM pg_namespace WHERE oid = CASE w.classid \
                   WHEN 'pg_type'::regclass THEN (SELECT typnamespace FROM pg_type WHERE oid = w.objid) \
                   WHEN 'pg_proc'::regclass THEN (SELECT pronamespace FROM pg_proc WHERE oid = w.objid) \
                   WHEN 'pg_class'::regclass THEN (SELECT relnamespace FROM pg_class WHERE oid = w.objid) \
                   WHEN 'pg_extension'::regclass THEN (SELECT extnamespace FROM pg_extension WHERE oid = w.objid) END), '') \
                NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
            AND NOT (w.classid = 'pg_extension'::regclass AND w.objid = (SELECT oid FROM pg_extension WHERE extname = 'plpgsql'))"
    )
}

/// Runs `sql` with an empty `search_path`, so every name it prints is qualified, and
/// puts the session's path back after: the snapshot's other queries print names as usual.
fn qualified<T: serde::de::DeserializeOwned>(
    session: &mut Session,
    sql: &str,
) -> anyhow::Result<T> {
    session.query("SAVEPOINT pgferry_dependencies; SET LOCAL search_path = ''")?;
    let result = session.json(sql);
    session.query("ROLLBACK TO SAVEPOINT pgferry_dependencies")?;
    result
}

/// What `tables` need, in the order to create it (what an object uses comes first).
pub fn collect(session: &mut Session, tables: &[QualifiedName]) -> anyhow::Result<Vec<Dependency>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let described: Vec<Described> = qualified(session, &describe_sql(&needed_sql(tables)))?;
    Ok(in_creation_order(described))
}

/// Orders objects so each comes after those it depends on (Kahn's algorithm); objects
/// with no order between them keep the query's order (kind, then name), so bundles of
/// the same schema list them alike.
fn in_creation_order(described: Vec<Described>) -> Vec<Dependency> {
    let keys: BTreeSet<String> = described.iter().map(|d| d.key.clone()).collect();
    let mut waiting: BTreeMap<usize, BTreeSet<String>> = described
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let deps = d
                .deps
                .iter()
                .filter(|k| keys.contains(*k) && **k != d.key)
                .cloned()
                .collect();
            (i, deps)
        })
        .collect();
    let mut order = Vec::with_capacity(described.len());
    while !waiting.is_empty() {
        // The first object whose dependencies are all placed; in a cycle, the first left.
        let next = waiting
            .iter()
            .find(|(_, deps)| deps.is_empty())
            .map(|(i, _)| *i)
            .or_else(|| waiting.keys().next().copied());
        let Some(next) = next else { break };
        waiting.remove(&next);
        let key = &described[next].key;
        for deps in waiting.values_mut() {
            deps.remove(key);
        }
        order.push(next);
    }
    let mut slots: Vec<Option<Described>> = described.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| slots[i].take().map(|d| d.dependency))
        .collect()
}

/// What the target has of each of `wanted`, in their order: its own description (`None`
/// when missing), compared by the caller with the bundle's.
pub fn on_target(psql: &Psql, wanted: &[Dependency]) -> anyhow::Result<Vec<Option<Dependency>>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let rows = wanted
        .iter()
        .map(|d| {
            let identity = quote_literal(&d.identity);
            match d.kind {
                Kind::Extension => format!(
                    "('pg_extension'::regclass::oid, (SELECT oid FROM pg_extension WHERE extname = {identity}))"
                ),
                Kind::Type | Kind::Domain => {
                    format!("('pg_type'::regclass::oid, to_regtype({identity})::oid)")
                }
                Kind::Function => {
                    format!("('pg_proc'::regclass::oid, to_regprocedure({identity})::oid)")
                }
                Kind::Sequence => {
                    format!("('pg_class'::regclass::oid, to_regclass({identity})::oid)")
                }
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let objects = format!(
        "SELECT classid, objid FROM (VALUES {rows}) v(classid, objid) WHERE objid IS NOT NULL"
    );
    let sql = format!("SET search_path = ''; {}", describe_sql(&objects));
    let found: Vec<Described> = psql.json(&sql)?;
    Ok(wanted
        .iter()
        .map(|w| {
            found
                .iter()
                .find(|f| f.dependency.kind == w.kind && f.dependency.identity == w.identity)
                .map(|f| f.dependency.clone())
        })
        .collect())
}

/// The extensions of `wanted` that the target can install (`pg_available_extensions`).
pub fn available_extensions(psql: &Psql, wanted: &[&str]) -> anyhow::Result<Vec<String>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let names = wanted
        .iter()
        .map(|n| quote_literal(n))
        .collect::<Vec<_>>()
        .join(", ");
    let found: Option<Vec<String>> = psql.json(&format!(
        "SELECT json_agg(name::text) FROM pg_available_extensions WHERE name IN ({names})"
    ))?;
    Ok(found.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(key: &str, identity: &str, deps: &[&str]) -> Described {
        Described {
            key: key.into(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
            dependency: Dependency {
                kind: Kind::Type,
                identity: identity.into(),
                schema: "public".into(),
                ddl: String::new(),
                value: None,
            },
        }
    }

    #[test]
    fn what_an_object_uses_comes_before_it_and_cycles_do_not_hang() {
        let order = in_creation_order(vec![
            described("1/1", "a", &["1/3", "9/9"]),
            described("1/2", "b", &[]),
            described("1/3", "c", &["1/2"]),
            described("1/4", "d", &["1/5"]),
            described("1/5", "e", &["1/4"]),
        ]);
        let names: Vec<&str> = order.iter().map(|d| d.identity.as_str()).collect();
        assert_eq!(names, ["b", "c", "a", "d", "e"]);
    }
}
