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

use super::ident::{quote_ident, quote_literal};
use super::pgoutput::{self, Lsn, Message};
use super::{Psql, Session};
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

/// A slot just made, and the snapshot its stream starts from: what the snapshot shows and
/// what the slot reports afterwards neither overlap nor leave a gap, so a complete bundle
/// dumped from the snapshot hands over to the partials exactly. Other sessions can import
/// the snapshot (`SET TRANSACTION SNAPSHOT`) only while this one stays open and idle; drop
/// it once they have.
pub struct NewSlot {
    /// Holds the exported snapshot.
    _session: Session,
    /// Where the slot's stream starts.
    pub consistent_point: Lsn,
    /// The exported snapshot's name.
    pub snapshot: String,
}

/// Creates the logical slot `slot` (pgoutput) on a replication connection, exporting the
/// snapshot it starts from.
pub fn create_exported(psql: &Psql, slot: &str) -> anyhow::Result<NewSlot> {
    let mut session = Session::open_replication(psql)
        .with_context(|| format!("open a replication connection to create slot {slot}"))?;
    let row = session
        .query(&format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput (SNAPSHOT 'export')",
            quote_ident(slot)
        ))
        .with_context(|| format!("create the replication slot {slot}"))
        .cause(Cause::Database)?;
    // slot_name|consistent_point|snapshot_name|output_plugin
    let fields: Vec<&str> = row.trim().split('|').collect();
    let [_, point, snapshot, _] = fields[..] else {
        bail!("CREATE_REPLICATION_SLOT for {slot} answered {row:?}, not its four fields");
    };
    Ok(NewSlot {
        consistent_point: point.parse()?,
        snapshot: snapshot.to_string(),
        _session: session,
    })
}
