//! `sender check`: the local self-test, one ok/warn/FAIL line per item.

use std::path::Path;

use pgferry::checks;
use pgferry::exit::Exit;
use pgferry::pg::ident::quote_ident;
use pgferry::pg::{catalog, Psql};
use pgferry::report::Report;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::sender::Remote;
use pgferry::settings::{ChangeSource, SenderSettings, Size};

use crate::horizon::Horizon;
use crate::{slot, tables};

pub fn run(config: &Path) -> anyhow::Result<Exit> {
    let settings = SenderSettings::read(config)?;
    let mut report = Report::new();
    checks::config_permissions(&mut report, config);
    checks::running_user(&mut report);
    let pg_dump = checks::pg_tool(&mut report, "pg_dump");
    checks::pg_tool(&mut report, "psql");
    let psql = Psql::new(settings.source.connection());
    if let Some(server) = checks::database(&mut report, &psql) {
        compatibility(&mut report, pg_dump, server);
        database_objects(&mut report, &settings, &psql);
        open_transactions(&mut report, &psql);
        if settings.partial.source == ChangeSource::Logical {
            logical(&mut report, &settings, &psql);
        }
    }
    pgferry::seal::probe::sender(&mut report, &settings.bundle);
    for set in &settings.files {
        checks::dir_readable(&mut report, &format!("files {}", set.name), &set.dir);
    }
    match &settings.remote {
        Remote::Sftp(sftp) => {
            checks::file_readable(&mut report, "private key", &sftp.private_key);
            checks::file_readable(&mut report, "known_hosts", &sftp.known_hosts);
        }
        Remote::S3(s3) => checks::s3_store(&mut report, &s3.store, true),
    }
    checks::dir_writable(&mut report, "state dir", &settings.state.dir);
    println!("{}", report.summary());
    Ok(if report.failed() {
        Exit::Failed
    } else {
        Exit::Done
    })
}

/// pg_dump refuses to dump a server newer than itself.
fn compatibility(report: &mut Report, pg_dump: Option<u32>, server: u32) {
    let server_major = server / 10000;
    match pg_dump {
        Some(major) if major >= server_major => {
            report.ok("pg_dump version", format!("pg_dump {major} can dump server {server_major}"))
        }
        Some(major) => report.fail(
            "pg_dump version",
            format!("pg_dump {major} cannot dump server {server_major}; hint: install postgresql-client-{server_major}"),
        ),
        None => {}
    }
}

fn database_objects(report: &mut Report, settings: &SenderSettings, psql: &Psql) {
    let catalog_tables = match tables::catalog_tables(psql) {
        Ok(found) => found,
        Err(err) => {
            report.fail("tables", format!("cannot list the tables: {err:#}"));
            return;
        }
    };
    for (index, pattern) in settings.source.tables.iter().enumerate() {
        let matched: Vec<&QualifiedName> = catalog_tables
            .iter()
            .filter(|t| pattern.matches(t))
            .collect();
        if matched.is_empty() {
            report.fail(
                format!("table {pattern}"),
                tables::no_match(
                    &settings.path,
                    &format!("source.tables[{index}]"),
                    &pattern.to_string(),
                )
                .to_string(),
            );
        } else {
            report.ok(
                format!("table {pattern}"),
                format!("{} table(s)", matched.len()),
            );
        }
    }
    for entry in &settings.partial.tables {
        let Some(table) = entry.table.literal() else {
            continue;
        };
        partial_table(report, psql, &table, &entry.changed_at);
    }
    for set in &settings.files {
        for column in &set.referenced_by {
            let subject = format!("files {} referenced_by {column}", set.name);
            match catalog::table_info(psql, &column.table) {
                Ok(Some(info)) if info.columns.iter().any(|c| c.name == column.column) => {
                    report.ok(subject, "column exists")
                }
                Ok(Some(_)) => report.fail(
                    subject,
                    format!("table {} has no column {:?}", column.table, column.column),
                ),
                Ok(None) => report.fail(subject, format!("table {} does not exist", column.table)),
                Err(err) => report.fail(subject, format!("{err:#}")),
            }
        }
    }
}

fn partial_table(report: &mut Report, psql: &Psql, table: &QualifiedName, changed_at: &str) {
    let subject = format!("partial table {table}");
    let info = match catalog::table_info(psql, table) {
        Ok(Some(info)) => info,
        Ok(None) => return report.fail(subject, format!("table {table} does not exist")),
        Err(err) => return report.fail(subject, format!("{err:#}")),
    };
    match info.columns.iter().find(|c| c.name == changed_at) {
        None => report.fail(&subject, format!("changed_at column {changed_at:?} does not exist in {table}")),
        Some(column) if !column.type_name.starts_with("timestamp") && column.type_name != "date" => report.fail(
            &subject,
            format!("changed_at column {changed_at:?} has type {}, expected timestamp or timestamptz", column.type_name),
        ),
        Some(_) if !info.indexed_first.iter().any(|c| c == changed_at) => report.warn(
            &subject,
            format!("changed_at column {changed_at:?} has no index, so every partial scans the whole table; hint: CREATE INDEX ON {} ({})", table.quoted(), pgferry::pg::ident::quote_ident(changed_at)),
        ),
        Some(_) => report.ok(&subject, format!("changed_at column {changed_at:?} is indexed")),
    }
    if info.key.is_none() {
        report.fail(
            &subject,
            format!("table {table} has no primary key or unique not-null key, so its rows cannot be upserted"),
        );
    }
}

/// Partials wait for transactions open at their snapshot (guarantee 4): the role must see
/// them all, and one open for hours holds every window back.
fn open_transactions(report: &mut Report, psql: &Psql) {
    let subject = "open transactions";
    let horizon = match Horizon::query(psql) {
        Ok(horizon) => horizon,
        Err(err) => return report.fail(subject, format!("{err:#}")),
    };
    let role = &horizon.role;
    if !horizon.sees_all {
        return report.fail(
            subject,
            format!(
                "role {role:?} cannot see the transactions of other roles, so a partial cannot wait for one that is still open and would lose its rows; hint: GRANT pg_read_all_stats TO {} (or pg_monitor)",
                quote_ident(role)
            ),
        );
    }
    match horizon.limit(horizon.observed_at).1 {
        Some(held) if held.is_long() => report.warn(
            subject,
            format!(
                "the transaction of pid {} ({:?}) has been open since {}, so partial windows end there and each resends what changed since; hint: SELECT * FROM pg_stat_activity WHERE pid = {}",
                held.pid,
                held.application_name,
                held.since.to_rfc3339(),
                held.pid
            ),
        ),
        _ => report.ok(
            subject,
            format!("role {role:?} sees every session's transaction; none has been open for over an hour"),
        ),
    }
}

/// What `[partial] source = "logical"` needs of the primary: WAL for logical decoding, a
/// role that may read a slot, room for the slot, a slot that is alive and not holding too
/// much WAL, and tables that can be published without hurting the primary.
fn logical(report: &mut Report, settings: &SenderSettings, psql: &Psql) {
    #[derive(serde::Deserialize)]
    struct Server {
        wal_level: String,
        role: String,
        replication: bool,
        slots: i64,
        max_slots: i64,
    }
    let server: anyhow::Result<Server> = psql.json(
        "SELECT json_build_object('wal_level', current_setting('wal_level'), 'role', current_user, \
         'replication', (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), \
         'slots', (SELECT count(*) FROM pg_catalog.pg_replication_slots), \
         'max_slots', current_setting('max_replication_slots')::int)",
    );
    let server = match server {
        Ok(server) => server,
        Err(err) => return report.fail("logical decoding", format!("{err:#}")),
    };
    if server.wal_level == "logical" {
        report.ok("wal_level", "logical");
    } else {
        report.fail(
            "wal_level",
            format!("is {}, and a replication slot needs logical; hint: ALTER SYSTEM SET wal_level = logical, then restart the server", server.wal_level),
        );
    }
    if server.replication {
        report.ok(
            "replication right",
            format!("role {:?} may use replication slots", server.role),
        );
    } else {
        report.fail(
            "replication right",
            format!("role {:?} may not make or read a replication slot; hint: ALTER ROLE {} REPLICATION", server.role, quote_ident(&server.role)),
        );
    }
    let partial = &settings.partial;
    let subject = format!("slot {}", partial.slot);
    match slot::state(psql, &partial.slot) {
        Err(err) => report.fail(subject, format!("{err:#}")),
        Ok(None) if server.slots >= server.max_slots => report.fail(
            subject,
            format!("does not exist, and all {} of max_replication_slots are taken; hint: raise max_replication_slots (a restart), or drop a slot no one reads", server.max_slots),
        ),
        Ok(None) => report.warn(subject, "does not exist yet; the next `sender complete` makes it"),
        Ok(Some(state)) if state.is_lost() => report.fail(
            subject,
            "was invalidated by PostgreSQL (wal_status lost); hint: run `sender complete`: it makes the slot anew",
        ),
        Ok(Some(state)) => {
            let retained = u64::try_from(state.retained.unwrap_or(0)).unwrap_or(0);
            let text = format!(
                "keeps {} of WAL (max_retained_wal {}), wal_status {}",
                Size(retained),
                partial.max_retained_wal,
                state.wal_status.as_deref().unwrap_or("-")
            );
            if retained > partial.max_retained_wal.0 {
                report.fail(subject, format!("{text}; hint: partials have stopped, or a transaction left open holds it back"));
            } else {
                report.ok(subject, text);
            }
        }
    }
    let captured = tables::catalog_tables(psql).and_then(|names| {
        let trees: Option<Vec<catalog::PartitionMember>> =
            psql.json(catalog::PARTITION_TREES_SQL)?;
        let trees = trees.unwrap_or_default();
        let tables = tables::complete_tables(settings, &names, &trees)?;
        slot::refuse_unpublishable(psql, &tables, &trees)?;
        Ok(tables.len())
    });
    match captured {
        Ok(n) => report.ok(
            "captured tables",
            format!("{n} table(s), each with a replica identity and a key"),
        ),
        Err(err) => report.fail("captured tables", format!("{err:#}")),
    }
}
