//! `pg_dump` runs of a bundle, all from the exported snapshot: the schema of each table
//! (before and after the data) and the data of all tables as one stream. `RowCounter`
//! counts each table's rows from that stream, so the counts come from the same snapshot
//! at no extra cost.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use pgferry::cause::{Cause, CauseExt};
use pgferry::pg::dump_syntax::identifier;
use pgferry::pg::psql::apply_connection;
use pgferry::process::{self, CommandReader};
use pgferry::progress::Progress;
use pgferry::settings::names::QualifiedName;
use pgferry::settings::Connection;

/// DDL of one table: what creates it, and its indexes and constraints.
pub struct TableSchema {
    pub pre: Vec<u8>,
    pub post: Vec<u8>,
}

fn pg_dump(connection: &Connection, snapshot: &str) -> Command {
    let mut cmd = Command::new(pgferry::pg::programs::pg_dump());
    cmd.args([
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--no-comments",
        "--strict-names",
    ]);
    cmd.arg(format!("--snapshot={snapshot}"));
    apply_connection(&mut cmd, connection);
    cmd
}

pub fn schema(
    connection: &Connection,
    snapshot: &str,
    table: &QualifiedName,
) -> anyhow::Result<TableSchema> {
    let section = |name: &str| -> anyhow::Result<Vec<u8>> {
        let mut cmd = pg_dump(connection, snapshot);
        cmd.args([
            "--schema-only",
            &format!("--section={name}"),
            "-t",
            &table.dump_pattern(),
        ]);
        process::output(&mut cmd)
            .with_context(|| format!("dump the schema of table {table}"))
            .cause(Cause::Database)
    };
    Ok(TableSchema {
        pre: section("pre-data")?,
        post: section("post-data")?,
    })
}

/// How many schema dumps run at once. Each `pg_dump` spends most of its ~100 ms starting
/// up and reading the catalog, mostly waiting on the server: one after another, ten of
/// them cost more than the data of a small database.
const SCHEMA_DUMPS_AT_ONCE: usize = 4;

/// The schema of each of `tables`, in their order, dumped a few at a time.
pub fn schemas(
    connection: &Connection,
    snapshot: &str,
    tables: &[QualifiedName],
) -> anyhow::Result<Vec<TableSchema>> {
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<anyhow::Result<TableSchema>>>> =
        tables.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..SCHEMA_DUMPS_AT_ONCE.min(tables.len()) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(table) = tables.get(index) else {
                    break;
                };
                let result = schema(connection, snapshot, table);
                let failed = result.is_err();
                if let Ok(mut slot) = results[index].lock() {
                    *slot = Some(result);
                }
                if failed {
                    // Stop handing out tables: the bundle fails anyway.
                    next.store(tables.len(), Ordering::Relaxed);
                }
            });
        }
    });
    let mut schemas = Vec::with_capacity(tables.len());
    for (table, slot) in tables.iter().zip(results) {
        let result = slot
            .into_inner()
            .map_err(|_| anyhow::anyhow!("a schema dump thread panicked"))?;
        match result {
            Some(schema) => schemas.push(schema?),
            None => anyhow::bail!("the schema of table {table} was not dumped"),
        }
    }
    Ok(schemas)
}

/// The data of `tables` as a plain SQL stream of `COPY ... FROM stdin` blocks.
pub fn data(
    connection: &Connection,
    snapshot: &str,
    tables: &[QualifiedName],
) -> anyhow::Result<CommandReader> {
    let mut cmd = pg_dump(connection, snapshot);
    cmd.args(["--data-only", "--format=plain"]);
    for table in tables {
        cmd.args(["-t", &table.dump_pattern()]);
    }
    CommandReader::spawn(&mut cmd)
        .context("start pg_dump for the data")
        .cause(Cause::Database)
}

/// Passes a plain dump through and counts the rows of each `COPY` block: in COPY text
/// format one row is exactly one line.
pub struct RowCounter<R> {
    inner: R,
    line: Vec<u8>,
    line_overflow: bool,
    current: Option<QualifiedName>,
    pub rows: BTreeMap<QualifiedName, u64>,
    /// Bytes passed so far, and where to report them and each table.
    passed: u64,
    progress: Progress,
}

/// Only the start of a long line is kept: enough for any `COPY` header.
const LINE_KEEP: usize = 64 * 1024;

impl<R: Read> RowCounter<R> {
    pub fn new(inner: R) -> Self {
        RowCounter {
            inner,
            line: Vec::new(),
            line_overflow: false,
            current: None,
            rows: BTreeMap::new(),
            passed: 0,
            progress: Progress::none(),
        }
    }

    /// The same, reporting the bytes passed and each table as its rows begin.
    pub fn with_progress(self, progress: Progress) -> Self {
        RowCounter { progress, ..self }
    }

    fn end_of_line(&mut self) {
        if let Some(table) = &self.current {
            if self.line == b"\\." {
                self.current = None;
            } else {
                *self.rows.entry(table.clone()).or_insert(0) += 1;
            }
        } else if !self.line_overflow && self.line.starts_with(b"COPY ") {
            if let Some(table) = parse_copy_target(&String::from_utf8_lossy(&self.line)) {
                self.rows.entry(table.clone()).or_insert(0);
                self.progress.table(&table);
                self.current = Some(table);
            }
        }
        self.line.clear();
        self.line_overflow = false;
    }
}

impl<R: Read> Read for RowCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.passed += n as u64;
        self.progress.bytes(self.passed);
        let mut rest = &buf[..n];
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.keep(&rest[..pos]);
            self.end_of_line();
            rest = &rest[pos + 1..];
        }
        self.keep(rest);
        Ok(n)
    }
}

impl<R> RowCounter<R> {
    fn keep(&mut self, bytes: &[u8]) {
        // Inside a COPY block only `\.` matters, so two bytes suffice there.
        let limit = if self.current.is_some() { 3 } else { LINE_KEEP };
        let room = limit.saturating_sub(self.line.len());
        if bytes.len() > room {
            self.line_overflow = true;
        }
        self.line.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// The table of a `COPY schema.table (cols) FROM stdin;` line, quoted or not.
pub fn parse_copy_target(line: &str) -> Option<QualifiedName> {
    let rest = line.strip_prefix("COPY ")?;
    let (schema, rest) = identifier(rest)?;
    let rest = rest.strip_prefix('.')?;
    let (name, _) = identifier(rest)?;
    Some(QualifiedName { schema, name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_targets_parse_quoted_and_plain() {
        assert_eq!(
            parse_copy_target("COPY public.bus (id, plate) FROM stdin;"),
            Some(QualifiedName::new("public", "bus"))
        );
        assert_eq!(
            parse_copy_target(r#"COPY public."AndroidRequests_report" ("timeStamp") FROM stdin;"#),
            Some(QualifiedName::new("public", "AndroidRequests_report"))
        );
        assert_eq!(
            parse_copy_target(r#"COPY "we""ird"."a.b c" (x) FROM stdin;"#),
            Some(QualifiedName::new("we\"ird", "a.b c"))
        );
    }

    #[test]
    fn rows_are_counted_per_copy_block_across_reads() {
        let dump = "SET x = 1;\nCOPY public.a (id) FROM stdin;\n1\n2\n3\n\\.\n\nCOPY public.\"B\" (id) FROM stdin;\n\\.\nSELECT 1;\n";
        // Read one byte at a time, the worst case for line splitting.
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let mut counter = RowCounter::new(OneByte(dump.as_bytes()));
        let mut out = Vec::new();
        counter.read_to_end(&mut out).unwrap();
        assert_eq!(out, dump.as_bytes());
        assert_eq!(
            counter.rows.get(&QualifiedName::new("public", "a")),
            Some(&3)
        );
        assert_eq!(
            counter.rows.get(&QualifiedName::new("public", "B")),
            Some(&0)
        );
    }
}
