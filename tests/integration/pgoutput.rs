//! The pgoutput decoder against a real server: a slot on the cluster with
//! `wal_level = logical` reports inserts, an update that leaves a TOASTed value out,
//! a delete by key and a truncate, each transaction between its Begin and Commit.

use pgferry::pg::pgoutput::{decode, Lsn, Message, Old, Tuple, Value};
use pgferry::pg::{slot, Psql};
use pgferry::settings::Connection;

use crate::util::*;

/// A logical replication slot of the test's own, dropped at the end whatever happens: a
/// slot keeps its database from being dropped and the cluster's WAL from being recycled.
struct Slot<'d> {
    db: &'d Db,
    name: String,
}

impl<'d> Slot<'d> {
    fn create(db: &'d Db) -> Slot<'d> {
        let name = unique("pgferry_test_slot");
        db.sql(&format!(
            "SELECT pg_create_logical_replication_slot('{name}', 'pgoutput')"
        ));
        Slot { db, name }
    }

    /// Every message the slot holds for `publication`, decoded, without consuming them.
    fn peek(&self, publication: &str) -> Vec<Message> {
        let rows = self.db.sql(&format!(
            "SELECT encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('{}', NULL, NULL, \
             'proto_version', '1', 'publication_names', '{publication}')",
            self.name
        ));
        rows.lines()
            .map(|line| decode(&hex::decode(line).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = self
            .db
            .sql_result(&format!("SELECT pg_drop_replication_slot('{}')", self.name));
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.as_bytes().to_vec())
}

#[test]
fn a_real_slots_changes_decode_in_commit_order() {
    let _cluster = LogicalCluster::shared();
    let db = Db::create(Cluster::Logical);
    db.sql(
        "CREATE TABLE stops (id integer PRIMARY KEY, code text NOT NULL, big text); \
         ALTER TABLE stops ALTER COLUMN big SET STORAGE EXTERNAL; \
         CREATE PUBLICATION pgferry_test FOR TABLE stops",
    );
    let slot = Slot::create(&db);
    db.sql("INSERT INTO stops VALUES (1, 'a', repeat('x', 10000)), (2, 'b', NULL)");
    db.sql("UPDATE stops SET code = 'a2' WHERE id = 1");
    db.sql("DELETE FROM stops WHERE id = 2");
    db.sql("TRUNCATE stops");
    let oid: u32 = db.sql("SELECT 'stops'::regclass::oid").parse().unwrap();

    let messages = slot.peek("pgferry_test");
    let relation = messages
        .iter()
        .find_map(|m| match m {
            Message::Relation(r) => Some(r),
            _ => None,
        })
        .expect("no Relation message");
    assert_eq!(
        (
            relation.oid,
            relation.namespace.as_str(),
            relation.name.as_str()
        ),
        (oid, "public", "stops")
    );
    let columns: Vec<(bool, &str)> = relation
        .columns
        .iter()
        .map(|c| (c.key, c.name.as_str()))
        .collect();
    assert_eq!(columns, vec![(true, "id"), (false, "code"), (false, "big")]);

    // The changes, each transaction framed by its Begin and Commit, in commit order.
    let mut shape = Vec::new();
    let mut last_commit = None;
    for message in &messages {
        match message {
            Message::Relation(_) | Message::Type { .. } => {}
            Message::Begin { final_lsn, .. } => {
                shape.push("begin".to_string());
                assert!(last_commit < Some(*final_lsn), "out of commit order");
            }
            Message::Commit { lsn, .. } => {
                shape.push("commit".to_string());
                last_commit = Some(*lsn);
            }
            other => shape.push(format!("{other:?}")),
        }
    }
    let big = text(&"x".repeat(10000));
    let expected = vec![
        "begin".to_string(),
        format!(
            "{:?}",
            Message::Insert {
                relation: oid,
                new: Tuple(vec![text("1"), text("a"), big])
            }
        ),
        format!(
            "{:?}",
            Message::Insert {
                relation: oid,
                new: Tuple(vec![text("2"), text("b"), Value::Null])
            }
        ),
        "commit".to_string(),
        "begin".to_string(),
        // The TOASTed value did not change, so the stream leaves it out.
        format!(
            "{:?}",
            Message::Update {
                relation: oid,
                old: None,
                new: Tuple(vec![text("1"), text("a2"), Value::Unchanged])
            }
        ),
        "commit".to_string(),
        "begin".to_string(),
        format!(
            "{:?}",
            Message::Delete {
                relation: oid,
                old: Old::Key(Tuple(vec![text("2"), Value::Null, Value::Null]))
            }
        ),
        "commit".to_string(),
        "begin".to_string(),
        format!(
            "{:?}",
            Message::Truncate {
                relations: vec![oid],
                cascade: false,
                restart_identity: false
            }
        ),
        "commit".to_string(),
    ];
    assert_eq!(shape, expected);
}

/// A `Psql` for the test's database, as pgferry's own code would build one.
fn psql_for(db: &Db) -> Psql {
    let env = Env::get();
    Psql::new(Connection {
        env: vec![
            ("PGHOST", env.var("PG_HOST").to_string()),
            ("PGPORT", db.port.to_string()),
            ("PGUSER", env.var("PG_USER").to_string()),
            ("PGDATABASE", db.name.clone()),
        ],
    })
}

/// (Begin, Insert, Commit) counts of everything `slot::peek` reads.
fn count(psql: &Psql, slot: &str, upto: Option<Lsn>) -> (usize, usize, usize) {
    let mut peek = slot::peek(psql, slot, "pgferry_test", upto).unwrap();
    let (mut begins, mut inserts, mut commits) = (0, 0, 0);
    while let Some((_, message)) = peek.next_message().unwrap() {
        match message {
            Message::Begin { .. } => begins += 1,
            Message::Insert { .. } => inserts += 1,
            Message::Commit { .. } => commits += 1,
            _ => {}
        }
    }
    (begins, inserts, commits)
}

#[test]
fn a_slot_is_read_as_a_stream_up_to_a_position_and_left_as_it_was() {
    let _cluster = LogicalCluster::shared();
    let db = Db::create(Cluster::Logical);
    db.sql(
        "CREATE TABLE readings (id integer PRIMARY KEY, body text); \
         CREATE PUBLICATION pgferry_test FOR TABLE readings",
    );
    let slot = Slot::create(&db);
    let psql = psql_for(&db);
    db.sql(
        "INSERT INTO readings SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 20000) g",
    );
    let between: Lsn = db.sql("SELECT pg_current_wal_lsn()").parse().unwrap();
    db.sql("INSERT INTO readings SELECT g, 'second' FROM generate_series(20001, 25000) g");

    assert_eq!(count(&psql, &slot.name, None), (2, 25000, 2));
    // A peek consumes nothing: the same again.
    assert_eq!(count(&psql, &slot.name, None), (2, 25000, 2));
    // Up to a position: the transactions that commit before it.
    assert_eq!(count(&psql, &slot.name, Some(between)), (1, 20000, 1));
    // Once the slot moves past the first transaction, only the second is left.
    db.sql(&format!(
        "SELECT pg_replication_slot_advance('{}', '{between}')",
        slot.name
    ));
    assert_eq!(count(&psql, &slot.name, None), (1, 5000, 1));
    // A slot that does not exist is an error that names it.
    let err = slot::peek(&psql, "pgferry_no_such_slot", "pgferry_test", None)
        .and_then(|mut p| p.next_message())
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("pgferry_no_such_slot"),
        "{err:#}"
    );
}

#[test]
fn a_slot_made_with_an_exported_snapshot_starts_exactly_where_the_snapshot_ends() {
    let _cluster = LogicalCluster::shared();
    let db = Db::create(Cluster::Logical);
    db.sql(
        "CREATE TABLE readings (id integer PRIMARY KEY, body text); \
         CREATE PUBLICATION pgferry_test FOR TABLE readings; \
         INSERT INTO readings VALUES (1, 'before')",
    );
    let psql = psql_for(&db);
    let name = unique("pgferry_test_slot");
    let made = slot::create_exported(&psql, &name).unwrap();
    let slot = Slot {
        db: &db,
        name: name.clone(),
    };
    assert!(made.consistent_point > Lsn(0));
    // Committed after the slot was made: in the slot's stream, not in the snapshot.
    db.sql("INSERT INTO readings VALUES (2, 'after')");
    let seen = db.sql(&format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{}'; \
         SELECT string_agg(id::text, ',' ORDER BY id) FROM readings",
        made.snapshot
    ));
    assert_eq!(seen, "1", "the snapshot does not end where the slot starts");
    drop(made);
    let inserted: Vec<Tuple> = slot
        .peek("pgferry_test")
        .into_iter()
        .filter_map(|m| match m {
            Message::Insert { new, .. } => Some(new),
            _ => None,
        })
        .collect();
    assert_eq!(inserted, vec![Tuple(vec![text("2"), text("after")])]);
}
