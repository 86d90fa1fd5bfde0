//! The changes of a logical partial as the bundle carries them: one CSV stream in commit
//! order, a record per insert, update, delete or truncate of a captured table:
//!
//! `seq,op,tbl,unchanged,old_key,vals`
//!
//! - `seq`: the change's place in the stream; `op`: `I`, `U`, `D` or `T`;
//! - `tbl`: the table's index in the manifest;
//! - `unchanged`: the 1-based columns an update left out (TOASTed values it did not
//!   change), as an array literal, or empty;
//! - `old_key`: the old key (a delete, or an update that changed the key), as a text array
//!   literal in the table's column order with NULL where the key has no column, or empty;
//! - `vals`: the new row as a text array literal of the columns' text forms, or empty.
//!
//! The values stay in their types' text forms, as pgoutput sends them: the receiver casts
//! each to its column's type, which runs the type's own input function.

use std::collections::HashMap;
use std::io::{self, Read};

use anyhow::bail;
use pgferry::bundle::manifest::TableManifest;
use pgferry::pg::pgoutput::{Lsn, Message, Old, Relation, Tuple, Value};
use pgferry::pg::slot::Peek;

/// The header the receiver expects.
pub const HEADER: &str = "seq,op,tbl,unchanged,old_key,vals\n";

/// Streams a slot's changes as the CSV above, and counts what it wrote.
pub struct ChangesCsv<'a> {
    peek: Peek,
    tables: &'a [TableManifest],
    /// Relation OID → manifest index, from the stream's Relation messages.
    relations: HashMap<u32, usize>,
    buffer: Vec<u8>,
    at: usize,
    done: bool,
    seq: u64,
    /// Change records per manifest table.
    pub counts: Vec<u64>,
    /// Where the last transaction read ends: how far the slot may move once published.
    pub end: Option<Lsn>,
}

impl<'a> ChangesCsv<'a> {
    pub fn new(peek: Peek, tables: &'a [TableManifest]) -> Self {
        ChangesCsv {
            peek,
            tables,
            relations: HashMap::new(),
            buffer: HEADER.as_bytes().to_vec(),
            at: 0,
            done: false,
            seq: 0,
            counts: vec![0; tables.len()],
            end: None,
        }
    }

    /// Decodes messages until some CSV is buffered or the slot has no more.
    fn fill(&mut self) -> anyhow::Result<()> {
        self.buffer.clear();
        self.at = 0;
        while self.buffer.is_empty() {
            let Some((_, message)) = self.peek.next_message()? else {
                self.done = true;
                return Ok(());
            };
            self.record(message)?;
        }
        Ok(())
    }

    fn record(&mut self, message: Message) -> anyhow::Result<()> {
        match message {
            Message::Relation(relation) => {
                let index = self.table_of(&relation)?;
                self.relations.insert(relation.oid, index);
            }
            Message::Commit { end_lsn, .. } => self.end = Some(end_lsn),
            Message::Insert { relation, new } => self.write('I', relation, None, Some(&new))?,
            Message::Update { relation, old, new } => {
                let old_key = old.as_ref().map(|o| match o {
                    Old::Key(t) | Old::Row(t) => t,
                });
                self.write('U', relation, old_key, Some(&new))?
            }
            Message::Delete { relation, old } => {
                let (Old::Key(t) | Old::Row(t)) = &old;
                self.write('D', relation, Some(t), None)?
            }
            Message::Truncate { relations, .. } => {
                for relation in relations {
                    self.write('T', relation, None, None)?;
                }
            }
            Message::Begin { .. } | Message::Origin { .. } | Message::Type { .. } => {}
        }
        Ok(())
    }

    /// The manifest index of a relation the stream describes, whose columns must be the
    /// table's columns now (a change written before a column was added or dropped cannot
    /// be applied to the table the bundle describes: a complete bundle carries it).
    fn table_of(&self, relation: &Relation) -> anyhow::Result<usize> {
        let Some(index) = self
            .tables
            .iter()
            .position(|t| t.table.schema == relation.namespace && t.table.name == relation.name)
        else {
            bail!(
                "the slot holds changes of table {}.{}, which is not a table of complete bundles",
                relation.namespace,
                relation.name
            );
        };
        let table = &self.tables[index];
        let now: Vec<&str> = published_columns(table);
        let then: Vec<&str> = relation.columns.iter().map(|c| c.name.as_str()).collect();
        if now != then {
            bail!(
                "table {} had the columns ({}) when some of its changes were written and has ({}) now; \
                 hint: run `sender complete`: a complete bundle carries the table as it is, and the partials after it start there",
                table.table,
                then.join(", "),
                now.join(", ")
            );
        }
        Ok(index)
    }

    fn write(
        &mut self,
        op: char,
        relation: u32,
        old: Option<&Tuple>,
        new: Option<&Tuple>,
    ) -> anyhow::Result<()> {
        let Some(&index) = self.relations.get(&relation) else {
            bail!(
                "a change of relation {relation} comes before its description in the slot's stream"
            );
        };
        self.seq += 1;
        self.counts[index] += 1;
        let unchanged: Vec<String> = new
            .map(|t| {
                t.0.iter()
                    .enumerate()
                    .filter(|(_, v)| **v == Value::Unchanged)
                    .map(|(i, _)| (i + 1).to_string())
                    .collect()
            })
            .unwrap_or_default();
        let unchanged = if unchanged.is_empty() {
            String::new()
        } else {
            csv_field(&format!("{{{}}}", unchanged.join(",")))
        };
        let old = old
            .map(|t| csv_field(&array_literal(t)))
            .unwrap_or_default();
        let vals = new
            .map(|t| csv_field(&array_literal(t)))
            .unwrap_or_default();
        let line = format!("{},{op},{index},{unchanged},{old},{vals}\n", self.seq);
        self.buffer.extend_from_slice(line.as_bytes());
        Ok(())
    }
}

/// The columns pgoutput sends: all but the generated ones, in the table's order.
pub fn published_columns(table: &TableManifest) -> Vec<&str> {
    table
        .columns
        .iter()
        .filter(|c| !c.generated)
        .map(|c| c.name.as_str())
        .collect()
}

/// `{"v1",NULL,...}`: PostgreSQL's text array syntax, every element quoted, so any text
/// survives; an unchanged value is NULL here and named in `unchanged`.
fn array_literal(tuple: &Tuple) -> String {
    let mut out = String::from("{");
    for (i, value) in tuple.0.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match value {
            Value::Null | Value::Unchanged => out.push_str("NULL"),
            Value::Text(bytes) => {
                out.push('"');
                for ch in String::from_utf8_lossy(bytes).chars() {
                    if ch == '"' || ch == '\\' {
                        out.push('\\');
                    }
                    out.push(ch);
                }
                out.push('"');
            }
        }
    }
    out.push('}');
    out
}

/// A quoted CSV field.
fn csv_field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

impl Read for ChangesCsv<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.buffer.len() {
            if self.done {
                return Ok(0);
            }
            self.fill().map_err(io::Error::other)?;
            if self.buffer.is_empty() {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.buffer.len() - self.at);
        buf[..n].copy_from_slice(&self.buffer[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_array_literals_any_text_survives() {
        let tuple = Tuple(vec![
            Value::Text(b"1".to_vec()),
            Value::Null,
            Value::Text(br#"a "quoted" \ back,slash"#.to_vec()),
            Value::Unchanged,
        ]);
        assert_eq!(
            array_literal(&tuple),
            r#"{"1",NULL,"a \"quoted\" \\ back,slash",NULL}"#
        );
        assert_eq!(csv_field(r#"{"a"}"#), r#""{""a""}""#);
    }
}
