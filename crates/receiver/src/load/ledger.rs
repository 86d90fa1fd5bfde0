//! The ledger table in the target database. Each bundle's row is written in the same
//! transaction as its data, which makes loading exactly-once (guarantee 3).

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::bundle::{BundleName, Manifest};
use pgferry::pg::ident::quote_literal;
use pgferry::pg::Psql;
use pgferry::process;
use serde::{Deserialize, Serialize};

pub const CREATE: &str = "CREATE SCHEMA IF NOT EXISTS pgferry;\n\
CREATE TABLE IF NOT EXISTS pgferry.ledger (\n\
    bundle text PRIMARY KEY,\n\
    kind text NOT NULL,\n\
    sha256 text NOT NULL,\n\
    snapshot_time timestamptz NOT NULL,\n\
    window_start timestamptz,\n\
    window_end timestamptz,\n\
    status text NOT NULL,\n\
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()\n\
);\n";

/// A ledger row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub bundle: String,
    pub kind: String,
    pub sha256: String,
    pub snapshot_time: DateTime<Utc>,
    pub window_start: Option<DateTime<Utc>>,
    pub window_end: Option<DateTime<Utc>>,
    pub status: String,
    pub applied_at: DateTime<Utc>,
}

impl Record {
    /// The newest source time the bundle holds: its window's end, or its snapshot.
    pub fn source_time(&self) -> DateTime<Utc> {
        self.window_end.unwrap_or(self.snapshot_time)
    }
}

/// The last applied complete and the last applied partial.
pub fn last_applied_each(psql: &Psql) -> anyhow::Result<[Option<Record>; 2]> {
    Ok([
        last_applied(psql, "complete")?,
        last_applied(psql, "partial")?,
    ])
}

/// Ledger statuses.
pub const APPLIED: &str = "applied";
pub const SKIPPED: &str = "skipped";
/// Never loaded: a newer complete bundle was pending (guarantee 4).
pub const SUPERSEDED: &str = "superseded";

/// Records `manifest` as skipped (an obsolete partial), in a transaction of its own.
pub fn record_skipped(psql: &Psql, manifest: &Manifest, sha256: &str) -> anyhow::Result<()> {
    let sql = format!(
        "BEGIN;\n{CREATE}{}COMMIT;\n",
        insert(manifest, sha256, SKIPPED)
    );
    process::output(psql.command().args(["-c", &sql])).with_context(|| {
        format!(
            "record bundle {} as skipped in {}",
            manifest.name,
            psql.connection.describe()
        )
    })?;
    Ok(())
}

/// A bundle recorded as superseded: known by its name and the SHA-256 of its file, since
/// it is never opened (a refused or damaged one included).
pub struct Superseded<'a> {
    pub name: &'a BundleName,
    pub sha256: String,
}

/// Records `bundles` as superseded, in one transaction of their own. A bundle the ledger
/// has already (applied before a crash could archive it) keeps its row.
pub fn record_superseded(psql: &Psql, bundles: &[Superseded]) -> anyhow::Result<()> {
    let mut sql = format!("BEGIN;\n{CREATE}");
    for bundle in bundles {
        sql.push_str(&format!(
            "INSERT INTO pgferry.ledger (bundle, kind, sha256, snapshot_time, status) VALUES ({}, {}, {}, {}, {}) ON CONFLICT (bundle) DO NOTHING;\n",
            quote_literal(&bundle.name.file_name()),
            quote_literal(&bundle.name.kind.to_string()),
            quote_literal(&bundle.sha256),
            quote_literal(&bundle.name.created.to_rfc3339()),
            quote_literal(SUPERSEDED),
        ));
    }
    sql.push_str("COMMIT;\n");
    process::output(psql.command().args(["-c", &sql])).with_context(|| {
        format!(
            "record {} superseded bundle(s) in {}",
            bundles.len(),
            psql.connection.describe()
        )
    })?;
    Ok(())
}

/// The statement that records `manifest` as `status` (`applied` or `skipped`).
pub fn insert(manifest: &Manifest, sha256: &str, status: &str) -> String {
    let (start, end) = match manifest.window {
        Some(w) => (
            quote_literal(&w.start.to_rfc3339()),
            quote_literal(&w.end.to_rfc3339()),
        ),
        None => ("NULL".to_string(), "NULL".to_string()),
    };
    format!(
        "INSERT INTO pgferry.ledger (bundle, kind, sha256, snapshot_time, window_start, window_end, status) VALUES ({}, {}, {}, {}, {start}, {end}, {});\n",
        quote_literal(&manifest.name),
        quote_literal(&manifest.kind.to_string()),
        quote_literal(sha256),
        quote_literal(&manifest.snapshot_time.to_rfc3339()),
        quote_literal(status),
    )
}

const COLUMNS: &str =
    "bundle, kind, sha256, snapshot_time, window_start, window_end, status, applied_at";

/// Whether the ledger exists yet. A query naming a missing table fails at parse time,
/// so this is asked first.
fn exists(psql: &Psql) -> anyhow::Result<bool> {
    Ok(psql.scalar("SELECT to_regclass('pgferry.ledger') IS NULL")? != "t")
}

fn query(psql: &Psql, condition: &str) -> anyhow::Result<Vec<Record>> {
    if !exists(psql)? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT COALESCE(json_agg(r ORDER BY r.bundle), '[]'::json) FROM (SELECT {COLUMNS} FROM pgferry.ledger {condition}) r"
    );
    psql.json(&sql)
}

/// What a load needs to know before it starts: the ledger row of `bundle`, the last
/// applied complete bundle, and the newest applied bundle of either kind. Asked in one
/// query, since each one costs a connection.
#[derive(Debug, Default, Deserialize)]
pub struct Lookup {
    pub bundle: Option<Record>,
    pub last_complete: Option<Record>,
    pub newest: Option<Record>,
}

pub fn lookup(psql: &Psql, bundle: &str) -> anyhow::Result<Lookup> {
    if !exists(psql)? {
        return Ok(Lookup::default());
    }
    let sql = format!(
        "SELECT json_build_object(\
           'bundle', (SELECT row_to_json(r) FROM (SELECT {COLUMNS} FROM pgferry.ledger WHERE bundle = {}) r), \
           'last_complete', (SELECT row_to_json(r) FROM (SELECT {COLUMNS} FROM pgferry.ledger {}) r), \
           'newest', (SELECT row_to_json(r) FROM (SELECT {COLUMNS} FROM pgferry.ledger WHERE status = 'applied' ORDER BY bundle DESC LIMIT 1) r))",
        quote_literal(bundle),
        last_applied_where("complete")
    );
    psql.json(&sql)
}

/// The last applied bundle of `kind`.
pub fn last_applied(psql: &Psql, kind: &str) -> anyhow::Result<Option<Record>> {
    Ok(query(psql, &last_applied_where(kind))?.into_iter().next())
}

fn last_applied_where(kind: &str) -> String {
    format!(
        "WHERE kind = {} AND status = 'applied' ORDER BY bundle DESC LIMIT 1",
        quote_literal(kind)
    )
}

/// Every row, oldest first (tests and status).
pub fn all(psql: &Psql) -> anyhow::Result<Vec<Record>> {
    query(psql, "")
}
