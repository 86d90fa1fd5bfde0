//! The messages of PostgreSQL's `pgoutput` logical decoding plugin, protocol version 1, as
//! `pg_logical_slot_peek_binary_changes` returns them one per row (and the replication
//! protocol's `XLogData` carries them). Decoded here, with no extension on the primary:
//! pgoutput ships with PostgreSQL. The format is documented in PostgreSQL's "Logical
//! Replication Message Formats"; only what a slot without the `streaming`, `messages` or
//! `binary` options sends is accepted, and anything else is refused by name.

use std::fmt;
use std::str::FromStr;

/// A position in the write-ahead log, shown as PostgreSQL shows it (`16/B374D848`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl FromStr for Lsn {
    type Err = DecodeError;

    fn from_str(text: &str) -> Result<Lsn, DecodeError> {
        let bad = || DecodeError::BadLsn(text.to_string());
        let (high, low) = text.split_once('/').ok_or_else(bad)?;
        let high = u32::from_str_radix(high, 16).map_err(|_| bad())?;
        let low = u32::from_str_radix(low, 16).map_err(|_| bad())?;
        Ok(Lsn((u64::from(high) << 32) | u64::from(low)))
    }
}

/// Why a message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("a pgoutput {message} message ends early, in its {field}")]
    Truncated {
        message: &'static str,
        field: &'static str,
    },
    #[error("a pgoutput {message} message has {extra} bytes after its end")]
    Trailing { message: &'static str, extra: usize },
    #[error("unknown pgoutput message type {0:?}")]
    UnknownMessage(char),
    #[error("a pgoutput {message} message has an unknown {field} marker {marker:?}")]
    UnknownMarker {
        message: &'static str,
        field: &'static str,
        marker: char,
    },
    #[error("a name in a pgoutput {0} message is not UTF-8")]
    NotUtf8(&'static str),
    #[error("{0:?} is not a WAL position (like 16/B374D848)")]
    BadLsn(String),
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A transaction starts; `final_lsn` is where it commits.
    Begin {
        final_lsn: Lsn,
        /// Microseconds since 2000-01-01 UTC, PostgreSQL's epoch.
        commit_time: i64,
        xid: u32,
    },
    Commit {
        lsn: Lsn,
        end_lsn: Lsn,
        commit_time: i64,
    },
    /// The transaction was replayed from another server.
    Origin {
        lsn: Lsn,
        name: String,
    },
    /// Describes a table before its first change in the stream, and again when it changed.
    Relation(Relation),
    /// Names a type a relation's column uses (not built in).
    Type {
        oid: u32,
        namespace: String,
        name: String,
    },
    Insert {
        relation: u32,
        new: Tuple,
    },
    Update {
        relation: u32,
        /// The old key (when it changed) or the whole old row (`REPLICA IDENTITY FULL`).
        old: Option<Old>,
        new: Tuple,
    },
    Delete {
        relation: u32,
        old: Old,
    },
    Truncate {
        relations: Vec<u32>,
        cascade: bool,
        restart_identity: bool,
    },
}

/// A table as the stream describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub oid: u32,
    pub namespace: String,
    pub name: String,
    /// `d` (the primary key), `n` (nothing), `f` (the whole row) or `i` (an index).
    pub replica_identity: char,
    pub columns: Vec<RelationColumn>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity: what an update's or delete's old key carries.
    pub key: bool,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// The old side of an update or a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Old {
    /// Only the replica identity's columns are set; the others are null.
    Key(Tuple),
    /// Every column (`REPLICA IDENTITY FULL`).
    Row(Tuple),
}

/// One row's columns, in the relation's column order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple(pub Vec<Value>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    /// A TOASTed value the update did not change, so the stream leaves it out.
    Unchanged,
    /// The value in the type's text form.
    Text(Vec<u8>),
}

/// Decodes one message.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    let (&tag, rest) = bytes.split_first().ok_or(DecodeError::Truncated {
        message: "empty",
        field: "type",
    })?;
    let message = match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        other => return Err(DecodeError::UnknownMessage(char::from(other))),
    };
    let mut r = Reader {
        bytes: rest,
        message,
    };
    let decoded = match tag {
        b'B' => Message::Begin {
            final_lsn: Lsn(r.u64("final LSN")?),
            commit_time: r.i64("commit time")?,
            xid: r.u32("transaction id")?,
        },
        b'C' => {
            r.u8("flags")?;
            Message::Commit {
                lsn: Lsn(r.u64("commit LSN")?),
                end_lsn: Lsn(r.u64("end LSN")?),
                commit_time: r.i64("commit time")?,
            }
        }
        b'O' => Message::Origin {
            lsn: Lsn(r.u64("origin LSN")?),
            name: r.string("origin name")?,
        },
        b'R' => {
            let oid = r.u32("relation OID")?;
            let namespace = r.string("namespace")?;
            let name = r.string("relation name")?;
            let replica_identity = char::from(r.u8("replica identity")?);
            let count = r.u16("column count")?;
            let mut columns = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                columns.push(RelationColumn {
                    key: r.u8("column flags")? & 1 == 1,
                    name: r.string("column name")?,
                    type_oid: r.u32("column type")?,
                    type_modifier: r.i32("column type modifier")?,
                });
            }
            Message::Relation(Relation {
                oid,
                namespace,
                name,
                replica_identity,
                columns,
            })
        }
        b'Y' => Message::Type {
            oid: r.u32("type OID")?,
            namespace: r.string("namespace")?,
            name: r.string("type name")?,
        },
        b'I' => {
            let relation = r.u32("relation OID")?;
            r.expect(b'N', "new row")?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32("relation OID")?;
            let old = match r.u8("row marker")? {
                b'K' => Some(Old::Key(r.tuple()?)),
                b'O' => Some(Old::Row(r.tuple()?)),
                b'N' => None,
                other => return Err(r.unknown("row marker", other)),
            };
            if old.is_some() {
                r.expect(b'N', "new row")?;
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32("relation OID")?;
            let old = match r.u8("row marker")? {
                b'K' => Old::Key(r.tuple()?),
                b'O' => Old::Row(r.tuple()?),
                other => return Err(r.unknown("row marker", other)),
            };
            Message::Delete { relation, old }
        }
        _ => {
            let count = r.u32("relation count")?;
            let options = r.u8("options")?;
            let mut relations = Vec::new();
            for _ in 0..count {
                relations.push(r.u32("relation OID")?);
            }
            Message::Truncate {
                relations,
                cascade: options & 1 == 1,
                restart_identity: options & 2 == 2,
            }
        }
    };
    if !r.bytes.is_empty() {
        return Err(DecodeError::Trailing {
            message,
            extra: r.bytes.len(),
        });
    }
    Ok(decoded)
}

/// Reads a message's fields, front to back, naming the field that runs out.
struct Reader<'b> {
    bytes: &'b [u8],
    message: &'static str,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'b [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated {
                message: self.message,
                field,
            });
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    /// A NUL-terminated UTF-8 string.
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated {
                message: self.message,
                field,
            })?;
        let text = std::str::from_utf8(&self.bytes[..end])
            .map_err(|_| DecodeError::NotUtf8(self.message))?
            .to_string();
        self.bytes = &self.bytes[end + 1..];
        Ok(text)
    }

    fn expect(&mut self, marker: u8, field: &'static str) -> Result<(), DecodeError> {
        let found = self.u8(field)?;
        if found != marker {
            return Err(self.unknown(field, found));
        }
        Ok(())
    }

    fn unknown(&self, field: &'static str, marker: u8) -> DecodeError {
        DecodeError::UnknownMarker {
            message: self.message,
            field,
            marker: char::from(marker),
        }
    }

    /// `TupleData`: a column count, then each column's kind and value. Values in binary
    /// form come only when the slot is asked for them, which pgferry never does.
    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let count = self.u16("column count")?;
        let mut values = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            values.push(match self.u8("column kind")? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32("value length")?;
                    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated {
                        message: self.message,
                        field: "value",
                    })?;
                    Value::Text(self.take(len, "value")?.to_vec())
                }
                other => return Err(self.unknown("column kind", other)),
            });
        }
        Ok(Tuple(values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds message bytes field by field, as pgoutput writes them.
    #[derive(Default)]
    struct Bytes(Vec<u8>);

    impl Bytes {
        fn tag(mut self, tag: u8) -> Self {
            self.0.push(tag);
            self
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend(v.to_be_bytes());
            self
        }
        fn string(mut self, v: &str) -> Self {
            self.0.extend(v.as_bytes());
            self.0.push(0);
            self
        }
        fn text(self, v: &str) -> Self {
            let mut s = self.u8(b't').u32(v.len() as u32);
            s.0.extend(v.as_bytes());
            s
        }
    }

    #[test]
    fn lsns_read_and_print_as_postgresql_writes_them() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn, Lsn(0x16_B374_D848));
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert!("16B374D848".parse::<Lsn>().is_err());
        assert!("x/1".parse::<Lsn>().is_err());
    }

    #[test]
    fn a_relation_and_its_changes_decode() {
        let relation = Bytes::default()
            .tag(b'R')
            .u32(16384)
            .string("public")
            .string("Stops")
            .u8(b'd')
            .u16(2)
            .u8(1)
            .string("id")
            .u32(23)
            .u32(u32::MAX)
            .u8(0)
            .string("note")
            .u32(25)
            .u32(u32::MAX);
        assert_eq!(
            decode(&relation.0).unwrap(),
            Message::Relation(Relation {
                oid: 16384,
                namespace: "public".into(),
                name: "Stops".into(),
                replica_identity: 'd',
                columns: vec![
                    RelationColumn {
                        key: true,
                        name: "id".into(),
                        type_oid: 23,
                        type_modifier: -1
                    },
                    RelationColumn {
                        key: false,
                        name: "note".into(),
                        type_oid: 25,
                        type_modifier: -1
                    },
                ],
            })
        );
        let update = Bytes::default()
            .tag(b'U')
            .u32(16384)
            .u8(b'K')
            .u16(2)
            .text("1")
            .u8(b'n')
            .u8(b'N')
            .u16(2)
            .text("2")
            .u8(b'u');
        assert_eq!(
            decode(&update.0).unwrap(),
            Message::Update {
                relation: 16384,
                old: Some(Old::Key(Tuple(vec![
                    Value::Text(b"1".to_vec()),
                    Value::Null
                ]))),
                new: Tuple(vec![Value::Text(b"2".to_vec()), Value::Unchanged]),
            }
        );
        let truncate = Bytes::default().tag(b'T').u32(2).u8(3).u32(1).u32(2);
        assert_eq!(
            decode(&truncate.0).unwrap(),
            Message::Truncate {
                relations: vec![1, 2],
                cascade: true,
                restart_identity: true
            }
        );
        let commit = Bytes::default().tag(b'C').u8(0).u64(10).u64(20).u64(30);
        assert_eq!(
            decode(&commit.0).unwrap(),
            Message::Commit {
                lsn: Lsn(10),
                end_lsn: Lsn(20),
                commit_time: 30
            }
        );
    }

    #[test]
    fn damaged_messages_are_refused_by_name() {
        assert_eq!(
            decode(&[]).unwrap_err().to_string(),
            "a pgoutput empty message ends early, in its type"
        );
        assert_eq!(decode(b"Z").unwrap_err(), DecodeError::UnknownMessage('Z'));
        let insert = Bytes::default()
            .tag(b'I')
            .u32(1)
            .u8(b'N')
            .u16(1)
            .u8(b't')
            .u32(10);
        assert_eq!(
            decode(&insert.0).unwrap_err().to_string(),
            "a pgoutput Insert message ends early, in its value"
        );
        let binary = Bytes::default().tag(b'I').u32(1).u8(b'N').u16(1).u8(b'b');
        assert_eq!(
            decode(&binary.0).unwrap_err().to_string(),
            "a pgoutput Insert message has an unknown column kind marker 'b'"
        );
        let trailing = Bytes::default()
            .tag(b'Y')
            .u32(1)
            .string("s")
            .string("t")
            .u8(0);
        assert_eq!(
            decode(&trailing.0).unwrap_err().to_string(),
            "a pgoutput Type message has 1 bytes after its end"
        );
        // Every prefix of a valid message is refused, never misread.
        let whole = Bytes::default()
            .tag(b'D')
            .u32(7)
            .u8(b'O')
            .u16(2)
            .text("a")
            .text("bc");
        assert!(decode(&whole.0).is_ok());
        for end in 0..whole.0.len() {
            assert!(decode(&whole.0[..end]).is_err(), "prefix of {end} bytes");
        }
    }
}
