//! The replication slot and the publication of `[partial] source = "logical"` on the
//! primary: what state the slot is in, making them, and moving the slot once a bundle that
//! holds its changes is published (never before: a crash in between then re-sends rather
//! than loses).

use anyhow::{bail, Context};
use pgferry::cause::{Cause, CauseExt};
use pgferry::pg::catalog::PartitionMember;
use pgferry::pg::ident::{quote_ident, quote_literal};
use pgferry::pg::pgoutput::Lsn;
use pgferry::pg::Psql;
use pgferry::settings::names::QualifiedName;
use serde::Deserialize;

/// A slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct SlotState {
    /// `reserved`, `extended`, `unreserving` or `lost`: a lost slot's changes are gone.
    pub wal_status: Option<String>,
    /// How far the receiver side confirmed: where the next read starts.
    pub confirmed: Option<String>,
    /// Bytes of WAL the primary keeps for it.
    pub retained: Option<i64>,
}

impl SlotState {
    pub fn is_lost(&self) -> bool {
        self.wal_status.as_deref() == Some("lost")
    }

    pub fn confirmed(&self) -> anyhow::Result<Option<Lsn>> {
        self.confirmed
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(Into::into)
    }
}

/// The slot's state, or None when it does not exist.
pub fn state(psql: &Psql, slot: &str) -> anyhow::Result<Option<SlotState>> {
    psql.json(&format!(
        "SELECT json_build_object('wal_status', wal_status, 'confirmed', confirmed_flush_lsn::text, \
         'retained', pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), restart_lsn)::bigint) \
         FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
        quote_literal(slot)
    ))
    .with_context(|| format!("read the state of replication slot {slot}"))
}

/// Where the primary writes WAL now.
pub fn current_lsn(psql: &Psql) -> anyhow::Result<Lsn> {
    let text = psql.scalar("SELECT pg_catalog.pg_current_wal_lsn()")?;
    Ok(text.trim().parse()?)
}

/// Moves the slot to `to` (its changes before it are delivered), when it is behind.
pub fn advance(psql: &Psql, slot: &str, to: Lsn) -> anyhow::Result<()> {
    psql.scalar(&format!(
        "SELECT pg_catalog.pg_replication_slot_advance({}, {}::pg_lsn) \
         FROM pg_catalog.pg_replication_slots WHERE slot_name = {0} AND confirmed_flush_lsn < {1}::pg_lsn",
        quote_literal(slot),
        quote_literal(&to.to_string())
    ))
    .with_context(|| format!("move replication slot {slot} to {to}"))
    .cause(Cause::Database)?;
    Ok(())
}

/// Drops the slot (one that was invalidated, before a complete makes it anew).
pub fn drop_slot(psql: &Psql, slot: &str) -> anyhow::Result<()> {
    psql.scalar(&format!(
        "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots WHERE slot_name = {}",
        quote_literal(slot)
    ))
    .with_context(|| format!("drop replication slot {slot}"))?;
    Ok(())
}

/// Makes the publication cover exactly `tables`: created, or set to them when the
/// configured tables changed. Partitions come with their root (and their changes carry
/// their own names), so only roots and plain tables are listed.
pub fn ensure_publication(
    psql: &Psql,
    publication: &str,
    tables: &[QualifiedName],
    trees: &[PartitionMember],
) -> anyhow::Result<()> {
    let mut wanted: Vec<&QualifiedName> = tables
        .iter()
        .filter(|t| !trees.iter().any(|m| &m.table == *t && m.depth > 0))
        .collect();
    if wanted.is_empty() {
        bail!("no table to publish for logical partials");
    }
    wanted.sort();
    // Its tables now, or None when it does not exist. Left alone when they are the ones
    // wanted: altering it would lock every table for a moment.
    let now: Option<Vec<QualifiedName>> = psql.json(&format!(
        "SELECT COALESCE((SELECT json_agg(json_build_object('schema', n.nspname, 'name', c.relname) ORDER BY n.nspname, c.relname)          FROM pg_catalog.pg_publication_rel r JOIN pg_catalog.pg_class c ON c.oid = r.prrelid          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE r.prpubid = p.oid), '[]'::json)          FROM pg_catalog.pg_publication p WHERE p.pubname = {}",
        quote_literal(publication)
    ))?;
    if let Some(now) = &now {
        if now.iter().collect::<Vec<_>>() == wanted {
            return Ok(());
        }
    }
    let listed: Vec<String> = wanted.iter().map(|t| t.quoted()).collect();
    let verb = if now.is_some() {
        format!("ALTER PUBLICATION {} SET TABLE", quote_ident(publication))
    } else {
        format!("CREATE PUBLICATION {} FOR TABLE", quote_ident(publication))
    };
    psql.scalar(&format!("{verb} {}", listed.join(", ")))
        .with_context(|| format!("set publication {publication} to the complete tables"))
        .cause(Cause::Database)?;
    Ok(())
}

/// Refuses, before the publication is touched, tables that would hurt the primary there or
/// whose changes the receiver could not apply. A table in a publication without a replica
/// identity makes the primary refuse every UPDATE and DELETE on it; and changes apply by
/// key on the receiver.
pub fn refuse_unpublishable(
    psql: &Psql,
    tables: &[QualifiedName],
    trees: &[PartitionMember],
) -> anyhow::Result<()> {
    // A partitioned table holds no rows: its partitions are checked.
    let rows: Vec<&QualifiedName> = tables
        .iter()
        .filter(|t| {
            !trees.iter().any(|m| {
                m.root == **t
                    && m.depth == 0
                    && m.table == **t
                    && trees.iter().any(|c| c.root == **t && c.depth > 0)
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(n, t)| format!("({n}, {}::regclass)", quote_literal(&t.quoted())))
        .collect();
    let problems: Option<Vec<Option<String>>> = psql.json(&format!(
        "SELECT json_agg(CASE \
           WHEN c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
             THEN 'has no replica identity, so the primary would refuse UPDATE and DELETE on it once it is in the publication' \
           WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL \
                 AND NOT EXISTS (SELECT FROM unnest(i.indkey) k JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k WHERE NOT a.attnotnull)) \
             THEN 'has no primary key or unique not-null key, so its changes cannot be applied by key on the receiver' \
           END ORDER BY v.n) FROM (VALUES {}) AS v(n, oid) JOIN pg_catalog.pg_class c ON c.oid = v.oid",
        values.join(", ")
    ))?;
    let named: Vec<String> = rows
        .iter()
        .zip(problems.unwrap_or_default())
        .filter_map(|(t, p)| p.map(|p| format!("table {t} {p}")))
        .collect();
    if !named.is_empty() {
        return Err(pgferry::cause::tag(
            anyhow::anyhow!(
                "{}\nhint: add a primary key, or give the table a unique index on not-null columns and `ALTER TABLE … REPLICA IDENTITY USING INDEX` it, or leave it out of source.tables",
                named.join("\n")
            ),
            Cause::Config,
        ));
    }
    Ok(())
}
