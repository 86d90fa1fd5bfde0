//! A primary, a secondary and the configs that join them, for end-to-end tests.

#![allow(dead_code)]

use std::path::PathBuf;

use crate::util::*;

pub struct Ferry {
    pub scratch: Scratch,
    pub source: Db,
    pub target: Db,
    pub sender_config: PathBuf,
    pub receiver_config: PathBuf,
}

impl Ferry {
    /// Both sides, with `tables` as the sender's complete tables and `schema_sql` run on
    /// the source first.
    pub fn new(schema_sql: &str, tables: &str) -> Ferry {
        Ferry::with(schema_sql, tables, "", "")
    }

    pub fn with(schema_sql: &str, tables: &str, sender_extra: &str, receiver_extra: &str) -> Ferry {
        let scratch = Scratch::new();
        let source = Db::create(Cluster::Primary);
        if !schema_sql.is_empty() {
            source.sql(schema_sql);
        }
        let target = Db::create(Cluster::Secondary);
        let sender_extra =
            sender_extra.replace("{scratch}", &scratch.dir.path().display().to_string());
        let receiver_extra =
            receiver_extra.replace("{scratch}", &scratch.dir.path().display().to_string());
        let sender_config = scratch.write(
            "sender.toml",
            &sender_toml(&scratch, &source, tables, &sender_extra),
        );
        let receiver_config = scratch.write(
            "receiver.toml",
            &receiver_toml(&scratch, &target, &receiver_extra),
        );
        Ferry {
            scratch,
            source,
            target,
            sender_config,
            receiver_config,
        }
    }

    pub fn sender(&self, args: &[&str]) -> Run {
        run_config("sender", &self.sender_config, args)
    }

    pub fn receiver(&self, args: &[&str]) -> Run {
        run_config("receiver", &self.receiver_config, args)
    }

    /// `sender complete` then `receiver load`, both expected to succeed.
    pub fn ship(&self) {
        self.sender(&["complete"]).expect_code(0);
        self.receiver(&["load"]).expect_code(0);
    }

    /// Bundle file names in the inbox (pending only).
    pub fn pending(&self) -> Vec<String> {
        list_dir(&self.scratch.inbox)
    }

    pub fn inbox_sub(&self, sub: &str) -> Vec<String> {
        list_dir(&self.scratch.inbox.join(sub))
    }

    /// Every row of `table` on one side, ordered, as JSON text.
    pub fn rows(db: &Db, table: &str, order: &str) -> String {
        db.sql(&format!(
            "SELECT COALESCE(json_agg(t ORDER BY {order}), '[]')::text FROM {table} t"
        ))
    }

    pub fn assert_same(&self, table: &str, order: &str) {
        let source = Ferry::rows(&self.source, table, order);
        let target = Ferry::rows(&self.target, table, order);
        assert_eq!(
            source, target,
            "table {table} differs between source and target"
        );
    }

    /// `(bundle, kind, status)` rows of the target's ledger.
    pub fn ledger(&self) -> Vec<String> {
        if self
            .target
            .sql("SELECT to_regclass('pgferry.ledger') IS NULL")
            == "t"
        {
            return Vec::new();
        }
        let text = self.target.sql("SELECT string_agg(bundle || ' ' || kind || ' ' || status, E'\\n' ORDER BY bundle) FROM pgferry.ledger");
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// File names in `dir`, sorted; empty when it does not exist.
pub fn list_dir(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
