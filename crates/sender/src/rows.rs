//! Streams the selected rows of one table as CSV with a header (columns match by name on
//! the receiver), read through the bundle's exported snapshot.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use anyhow::Context;
use pgferry::bundle::writer::{BundleWriter, PART_SIZE};
use pgferry::bundle::Manifest;
use pgferry::cause::{Cause, CauseExt};
use pgferry::pg::Psql;
use pgferry::process::CommandReader;

use crate::selection::Selected;

/// `COPY (SELECT ...) TO STDOUT` of `selected`'s rows, in snapshot `snapshot`.
pub fn copy_out(psql: &Psql, snapshot: &str, selected: &Selected) -> anyhow::Result<CommandReader> {
    let copy = format!(
        "COPY (SELECT t0.* FROM {} AS t0 WHERE {}) TO STDOUT WITH (FORMAT csv, HEADER true)",
        selected.table.quoted(),
        selected.predicate
    );
    let mut cmd = psql.command();
    // Each -c runs in order in one session; -q keeps the command tags off stdout.
    cmd.args(["-c", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"]);
    cmd.args([
        "-c",
        &format!(
            "SET TRANSACTION SNAPSHOT {}",
            pgferry::pg::ident::quote_literal(snapshot)
        ),
    ]);
    cmd.args(["-c", &copy, "-c", "COMMIT"]);
    CommandReader::spawn(&mut cmd)
        .with_context(|| format!("start COPY of table {}", selected.table))
        .cause(Cause::Database)
}

/// Passes CSV through and counts its records: newlines outside quotes, minus the header.
pub struct CsvCounter<R> {
    inner: R,
    in_quotes: bool,
    lines: u64,
}

impl<R: Read> CsvCounter<R> {
    pub fn new(inner: R) -> Self {
        CsvCounter {
            inner,
            in_quotes: false,
            lines: 0,
        }
    }

    /// Records seen, not counting the header.
    pub fn records(&self) -> u64 {
        self.lines.saturating_sub(1)
    }
}

impl<R: Read> Read for CsvCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &byte in &buf[..n] {
            match byte {
                // A doubled quote inside quotes toggles twice: the state stays right.
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' if !self.in_quotes => self.lines += 1,
                _ => {}
            }
        }
        Ok(n)
    }
}

/// How many tables' `COPY` runs ahead of the one being packed. Each psql spends ~50 ms
/// starting up, connecting and planning; started ahead, those costs overlap instead of
/// adding up. Each one ahead holds at most a pipe's worth of rows.
const COPIES_AHEAD: usize = 4;

pub fn pack<W: Write + Send + 'static>(
    psql: &Psql,
    snapshot_id: &str,
    selected: &[Selected],
    manifest: &mut Manifest,
    writer: &mut BundleWriter<W>,
) -> anyhow::Result<()> {
    let mut started = VecDeque::new();
    let mut not_started = selected.iter();
    for (index, (table, record)) in selected.iter().zip(manifest.tables.iter_mut()).enumerate() {
        while started.len() <= COPIES_AHEAD {
            match not_started.next() {
                Some(next) => started.push_back(copy_out(psql, snapshot_id, next)?),
                None => break,
            }
        }
        let copy = started
            .pop_front()
            .with_context(|| format!("no COPY was started for table {}", table.table))?;
        let mut counter = CsvCounter::new(copy);
        writer
            .append_parts(
                &format!("rows/{index:04}-"),
                ".csv",
                &mut counter,
                PART_SIZE,
            )
            .with_context(|| format!("stream the rows of table {} into the bundle", table.table))
            .cause(Cause::Database)?;
        record.rows = counter.records();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_with_quoted_newlines_count_once() {
        let csv = "id,note\n1,\"a\nb\"\n2,\"say \"\"hi\"\"\n\"\n3,\n";
        let mut counter = CsvCounter::new(csv.as_bytes());
        io::copy(&mut counter, &mut io::sink()).unwrap();
        assert_eq!(counter.records(), 3);
    }

    #[test]
    fn an_empty_result_has_only_a_header() {
        let mut counter = CsvCounter::new("id,note\n".as_bytes());
        io::copy(&mut counter, &mut io::sink()).unwrap();
        assert_eq!(counter.records(), 0);
    }
}
