//! One REPEATABLE READ snapshot of the source, exported so every `pg_dump` of a bundle
//! reads the same state of the database (guarantee 5).

use anyhow::Context;
use chrono::{DateTime, Utc};
use pgferry::pg::catalog::{self, PartitionMember, TableInfo};
use pgferry::pg::dependencies::{self, Dependency};
use pgferry::pg::{Psql, Session};
use pgferry::settings::names::QualifiedName;
use pgferry::watermark::HeldBack;
use serde::Deserialize;

use crate::horizon::{Horizon, SNAPSHOT_APPLICATION};

pub struct Snapshot {
    session: Session,
    /// The name `pg_dump --snapshot` takes.
    pub id: String,
    /// The database's clock when the snapshot was taken.
    pub time: DateTime<Utc>,
    pub server_version: String,
    /// The transactions open just before it, which windows and marks must not pass.
    pub horizon: Horizon,
}

#[derive(Deserialize)]
struct Opened {
    id: String,
    time: DateTime<Utc>,
    version: String,
}

impl Snapshot {
    pub fn open(psql: &Psql) -> anyhow::Result<Snapshot> {
        Snapshot::start(psql, None)
    }

    /// The snapshot `exported` by another session (a replication slot's), which must stay
    /// open until this returns.
    pub fn import(psql: &Psql, exported: &str) -> anyhow::Result<Snapshot> {
        Snapshot::start(psql, Some(exported))
    }

    fn start(psql: &Psql, exported: Option<&str>) -> anyhow::Result<Snapshot> {
        let target = psql.connection.describe();
        let (session, horizon, opened) = Snapshot::begin(psql, exported)
            .with_context(|| format!("open a snapshot of the source database {target}"))?;
        Ok(Snapshot {
            session,
            id: opened.id,
            time: opened.time,
            server_version: opened.version,
            horizon,
        })
    }

    fn begin(psql: &Psql, exported: Option<&str>) -> anyhow::Result<(Session, Horizon, Opened)> {
        let mut session = Session::open(psql)?;
        session.query(&format!("SET application_name = '{SNAPSHOT_APPLICATION}'"))?;
        // Before the snapshot: a transaction in progress at the snapshot is then either
        // seen here or began after this looked (see `horizon`).
        let horizon = Horizon::read(&mut session)?;
        session.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        if let Some(exported) = exported {
            session.query(&format!(
                "SET TRANSACTION SNAPSHOT {}",
                pgferry::pg::ident::quote_literal(exported)
            ))?;
        }
        // The first query of the transaction takes the snapshot; clock_timestamp() is read
        // while it runs.
        let opened: Opened = session.json("SELECT json_build_object('id', pg_export_snapshot(), 'time', clock_timestamp(), 'version', current_setting('server_version'))")?;
        Ok((session, horizon, opened))
    }

    /// Where this snapshot's windows may end and its mark may go, and the transaction
    /// that holds them short of the snapshot, logged.
    pub fn limit(&self) -> (DateTime<Utc>, Option<HeldBack>) {
        let (end, held) = self.horizon.limit(self.time);
        if let Some(held) = &held {
            crate::horizon::log(held);
        }
        (end, held)
    }

    /// The tables of the catalog, as the snapshot sees them.
    pub fn tables(&mut self) -> anyhow::Result<Vec<QualifiedName>> {
        let tables: Option<Vec<QualifiedName>> = self.session.json(catalog::TABLES_SQL)?;
        Ok(tables.unwrap_or_default())
    }

    /// The members of every partition tree, as the snapshot sees them.
    pub fn partition_trees(&mut self) -> anyhow::Result<Vec<PartitionMember>> {
        let trees: Option<Vec<PartitionMember>> =
            self.session.json(catalog::PARTITION_TREES_SQL)?;
        Ok(trees.unwrap_or_default())
    }

    pub fn table_info(&mut self, table: &QualifiedName) -> anyhow::Result<TableInfo> {
        let info: Option<TableInfo> = self.session.json(&catalog::table_info_sql(table))?;
        info.with_context(|| format!("table {table} disappeared from the source"))
    }

    /// What `tables` need besides their own DDL, in creation order, as the snapshot sees it.
    pub fn dependencies(&mut self, tables: &[QualifiedName]) -> anyhow::Result<Vec<Dependency>> {
        dependencies::collect(&mut self.session, tables).context(
            "describe the types, domains, functions, sequences and extensions the tables use",
        )
    }

    /// Any JSON-answering query, in the snapshot.
    pub fn json<T: serde::de::DeserializeOwned>(&mut self, sql: &str) -> anyhow::Result<T> {
        self.session.json(sql)
    }

    pub fn close(self) -> anyhow::Result<()> {
        self.session.close()
    }
}
