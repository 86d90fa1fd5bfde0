//! A primary, a secondary and the configs that join them, for end-to-end tests.

#![allow(dead_code)]

use std::path::PathBuf;

use crate::util::*;

/// A small table shaped like the original app's reports, for tests about the jobs rather
/// than the data.
pub const REPORTS: &str = r#"
CREATE TABLE "AndroidRequests_report" (id serial PRIMARY KEY, "timeStamp" timestamptz NOT NULL DEFAULT now(), message text);
CREATE INDEX ON "AndroidRequests_report" ("timeStamp");
INSERT INTO "AndroidRequests_report" (message) SELECT 'r' || g FROM generate_series(1, 10) g;
"#;

pub const REPORTS_TABLES: &str = r#"["public.AndroidRequests_report"]"#;

/// The reports as a partial table (the `sender_extra` of [`Ferry::with`]).
pub const REPORTS_PARTIAL: &str =
    "[[partial.tables]]\ntable = \"AndroidRequests_report\"\nchanged_at = \"timeStamp\"\n";

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
        Ferry::on(
            Cluster::Primary,
            schema_sql,
            tables,
            sender_extra,
            receiver_extra,
        )
    }

    /// The same, with the source database on `cluster`.
    pub fn on(
        cluster: Cluster,
        schema_sql: &str,
        tables: &str,
        sender_extra: &str,
        receiver_extra: &str,
    ) -> Ferry {
        let scratch = Scratch::new();
        let source = Db::create(cluster);
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

impl Ferry {
    /// `sender partial` then `receiver load`, both expected to succeed.
    pub fn ship_partial(&self, args: &[&str]) {
        let mut all = vec!["partial"];
        all.extend_from_slice(args);
        self.sender(&all).expect_code(0);
        self.receiver(&["load"]).expect_code(0);
    }

    /// The sender's high-water mark, as the RFC 3339 text of its state file.
    pub fn watermark(&self) -> String {
        let text =
            std::fs::read_to_string(self.scratch.path("sender-state/watermark.json")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["high_water_mark"].as_str().unwrap().to_string()
    }

    /// Sets the sender's high-water mark, as if the last bundle had been made at `mark`.
    pub fn set_watermark(&self, mark: &str) {
        let json = serde_json::json!({"high_water_mark": mark, "bundle": "set-by-test"});
        std::fs::write(
            self.scratch.path("sender-state/watermark.json"),
            json.to_string(),
        )
        .unwrap();
    }

    /// A copy of the sender config whose remote port has nothing listening: every upload
    /// fails to connect, as when the receiver's sshd is down.
    pub fn unreachable_sender_config(&self) -> std::path::PathBuf {
        let text = std::fs::read_to_string(&self.sender_config).unwrap();
        let ssh_port = Env::get().var("SSH_PORT");
        let from = format!("port = {ssh_port}\nuser");
        assert!(text.contains(&from), "no remote port in {text}");
        let broken = text.replace(&from, &format!("port = {}\nuser", free_port()));
        self.scratch.write("sender-unreachable.toml", &broken)
    }

    /// The manifest of a bundle in the inbox or in `applied/`.
    pub fn manifest(&self, file_name: &str) -> serde_json::Value {
        let pending = self.scratch.inbox.join(file_name);
        let path = if pending.exists() {
            pending
        } else {
            self.scratch.inbox.join("applied").join(file_name)
        };
        read_manifest(&path)
    }
}

/// The `MANIFEST.json` entry of a bundle file.
pub fn read_manifest(path: &std::path::Path) -> serde_json::Value {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let codec = if path.to_string_lossy().ends_with(".tar.zst") {
        pgferry::bundle::Codec::Zstd
    } else {
        pgferry::bundle::Codec::Gzip
    };
    let decoder = pgferry::bundle::codec::Decoder::new(file, codec).unwrap();
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        if entry.path().unwrap().to_str() == Some("MANIFEST.json") {
            return serde_json::from_reader(entry).unwrap();
        }
    }
    panic!("{} has no manifest", path.display());
}
