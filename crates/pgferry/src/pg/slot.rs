//! Reads what a logical replication slot holds without consuming it: `peek`, so a bundle
//! can be published before the slot moves, and a crash in between loses nothing. The
//! changes come from `pg_logical_slot_peek_binary_changes` on a normal connection, through
//! `COPY ... TO STDOUT`: psql streams them line by line and nothing is collected here, so
//! memory stays flat however much the slot holds. (The server buffers the decoded changes
//! in a tuplestore, which spills to disk past `work_mem`.) A slot reads only WAL that is
//! flushed: under `synchronous_commit = off` a transaction that just committed may be left
//! for the next read, so what a read covers ends at the last Commit it returned, never at
//! `pg_current_wal_lsn()`.

use std::io::{BufRead, BufReader};

use anyhow::{bail, Context};

use super::ident::quote_literal;
use super::pgoutput::{self, Lsn, Message};
use super::Psql;
use crate::cause::{Cause, CauseExt};
use crate::process::CommandReader;

/// The decoded messages a slot holds for a publication, in commit order, each with the
/// WAL position it was read at.
pub struct Peek {
    reader: BufReader<CommandReader>,
    slot: String,
    line: Vec<u8>,
}

/// Starts reading `slot`'s changes for `publication`, up to the transactions that commit
/// before `upto` (all of them without it).
pub fn peek(psql: &Psql, slot: &str, publication: &str, upto: Option<Lsn>) -> anyhow::Result<Peek> {
    let upto = upto.map_or("NULL".to_string(), |lsn| {
        format!("{}::pg_lsn", quote_literal(&lsn.to_string()))
    });
    let copy = format!(
        "COPY (SELECT lsn, encode(data, 'hex') FROM pg_catalog.pg_logical_slot_peek_binary_changes({}, {upto}, NULL, \
         'proto_version', '1', 'publication_names', {})) TO STDOUT",
        quote_literal(slot),
        quote_literal(publication)
    );
    let reader = CommandReader::spawn(psql.command().args(["-c", &copy]))
        .with_context(|| format!("read the changes of slot {slot}"))
        .cause(Cause::Database)?;
    Ok(Peek {
        reader: BufReader::with_capacity(256 * 1024, reader),
        slot: slot.to_string(),
        line: Vec::new(),
    })
}

impl Peek {
    /// The next message, or None once the slot has no more (and psql exited cleanly).
    pub fn next_message(&mut self) -> anyhow::Result<Option<(Lsn, Message)>> {
        self.line.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.line)
            .with_context(|| format!("read the changes of slot {}", self.slot))
            .cause(Cause::Database)?;
        if n == 0 {
            return Ok(None);
        }
        let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
        let text = std::str::from_utf8(line)
            .with_context(|| format!("a change of slot {} is not text", self.slot))?;
        let Some((lsn, data)) = text.split_once('\t') else {
            bail!(
                "a change of slot {} is not `lsn<TAB>data`: {text:.80}",
                self.slot
            );
        };
        let lsn: Lsn = lsn.parse()?;
        let bytes = hex::decode(data)
            .with_context(|| format!("the change at {lsn} of slot {} is not hex", self.slot))?;
        let message = pgoutput::decode(&bytes)
            .with_context(|| format!("decode the change at {lsn} of slot {}", self.slot))?;
        Ok(Some((lsn, message)))
    }
}
