//! The S3-compatible store of the test environment (moto's server, started by
//! `scripts/testenv.sh` with authentication on): a bucket of a test's own, the writer's and
//! the read-only reader's credentials, and a ferry with one sender and two receivers
//! through it.

#![allow(dead_code)]

use std::path::PathBuf;

use pgferry::settings::store::S3Settings;
use pgferry::store::s3::client::{Client, Verb, PLAIN};
use pgferry::store::s3::credentials::Found;
use pgferry::store::s3::leftovers::in_progress;
use rusty_s3::S3Action;

use crate::ferry::{list_dir, Ferry};
use crate::util::*;

/// Whose keys a process gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// May do anything: the sender.
    Writer,
    /// May only list and read: a receiver.
    Reader,
    /// A key the store does not know.
    Stranger,
}

impl Who {
    fn keys(self) -> (String, String) {
        let env = Env::get();
        match self {
            Who::Writer => (
                env.var("S3_WRITER_KEY_ID").into(),
                env.var("S3_WRITER_SECRET").into(),
            ),
            Who::Reader => (
                env.var("S3_READER_KEY_ID").into(),
                env.var("S3_READER_SECRET").into(),
            ),
            Who::Stranger => ("AKIAUNKNOWN000000000".into(), "not-a-secret".into()),
        }
    }

    /// The environment a `sender` or `receiver` runs with: the standard AWS variables, and
    /// no shared credentials file of the machine's.
    pub fn env(self) -> Vec<(&'static str, String)> {
        let (key, secret) = self.keys();
        vec![
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".into()),
        ]
    }
}

/// A bucket of the test's own, emptied and deleted on drop (objects and unfinished
/// uploads too), so nothing stays behind in the store.
pub struct Bucket {
    pub name: String,
    pub client: Client,
}

pub fn settings(bucket: &str, prefix: &str) -> S3Settings {
    let env = Env::get();
    S3Settings {
        endpoint: env.var("S3_ENDPOINT").to_string(),
        region: env.var("S3_REGION").to_string(),
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        path_style: true,
        timeout: None,
    }
}

impl Bucket {
    pub fn create() -> Bucket {
        let name = unique("ferry").replace('_', "-").to_lowercase();
        let (key, secret) = Who::Writer.keys();
        let found = Found::keys(&key, &secret, None, "the test");
        let client = Client::new(&settings(&name, ""), found.credentials).unwrap();
        let url = client.bucket.base_url().clone();
        client
            .send("create bucket", Verb::Put, &url, &[], &[])
            .unwrap();
        Bucket { name, client }
    }

    /// Every key in the bucket, sorted.
    pub fn keys(&self) -> Vec<String> {
        let url = self.client.bucket.list_objects_v2(None).sign(PLAIN);
        let response = self.client.send("list", Verb::Get, &url, &[], &[]).unwrap();
        let text = self.client.text("list", response).unwrap();
        let mut keys: Vec<String> = rusty_s3::actions::ListObjectsV2::parse_response(&text)
            .unwrap()
            .contents
            .into_iter()
            .map(|c| c.key)
            .collect();
        keys.sort();
        keys
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        let url = self.client.bucket.put_object(None, key).sign(PLAIN);
        self.client.send("put", Verb::Put, &url, &[], body).unwrap();
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        let url = self.client.bucket.get_object(None, key).sign(PLAIN);
        let mut response = self.client.send("get", Verb::Get, &url, &[], &[]).unwrap();
        response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    }

    /// Keys of the unfinished multipart uploads.
    pub fn unfinished_uploads(&self) -> Vec<String> {
        in_progress(&self.client, "")
            .unwrap()
            .into_iter()
            .map(|u| u.key)
            .collect()
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        for upload in in_progress(&self.client, "").unwrap_or_default() {
            let url = self
                .client
                .bucket
                .abort_multipart_upload(None, &upload.key, &upload.upload_id)
                .sign(PLAIN);
            let _ = self.client.send("abort", Verb::Delete, &url, &[], &[]);
        }
        for key in self.keys() {
            let url = self.client.bucket.delete_object(None, &key).sign(PLAIN);
            let _ = self.client.send("delete", Verb::Delete, &url, &[], &[]);
        }
        let url = self.client.bucket.base_url().clone();
        let _ = self
            .client
            .send("delete bucket", Verb::Delete, &url, &[], &[]);
    }
}

/// The `[remote]` of a sender publishing into `bucket` under `prefix`.
pub fn remote_toml(bucket: &str, prefix: &str, extra: &str) -> String {
    let env = Env::get();
    format!(
        "[remote]\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\npath_style = true\ntimeout = \"20s\"\n{extra}\n",
        env.var("S3_ENDPOINT"),
        env.var("S3_REGION"),
    )
}

/// The `[inbox]` of a receiver reading `bucket` under `prefix`, with `dir` as its work
/// directory.
pub fn inbox_toml(bucket: &str, prefix: &str, dir: &std::path::Path) -> String {
    let env = Env::get();
    format!(
        "[inbox]\nkind = \"s3\"\ndir = \"{}\"\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{bucket}\"\nprefix = \"{prefix}\"\npath_style = true\ntimeout = \"20s\"\n",
        dir.display(),
        env.var("S3_ENDPOINT"),
        env.var("S3_REGION"),
    )
}

/// Replaces the `[table]` of a config (up to the next table) with `replacement`.
pub fn replace_table(config: &str, table: &str, replacement: &str) -> String {
    let start = config
        .find(&format!("[{table}]\n"))
        .unwrap_or_else(|| panic!("no [{table}] in\n{config}"));
    let rest = &config[start + table.len() + 3..];
    let end = rest
        .find("\n[")
        .map(|i| start + table.len() + 3 + i + 1)
        .unwrap_or(config.len());
    format!("{}{replacement}{}", &config[..start], &config[end..])
}

/// A ferry whose sender publishes into a bucket of its own, read by two receivers (each
/// with its own target database, work directory and state).
pub struct S3Ferry {
    pub ferry: Ferry,
    pub bucket: Bucket,
    pub prefix: String,
    /// A second receiver on a database of its own.
    pub second: Receiver,
}

pub struct Receiver {
    pub target: Db,
    pub config: PathBuf,
    pub work: PathBuf,
}

impl S3Ferry {
    pub fn new(schema_sql: &str, tables: &str, sender_extra: &str, remote_extra: &str) -> S3Ferry {
        let bucket = Bucket::create();
        let prefix = "transapp/".to_string();
        let ferry = Ferry::with(schema_sql, tables, sender_extra, "");
        let sender = std::fs::read_to_string(&ferry.sender_config).unwrap();
        let sender = replace_table(
            &sender,
            "remote",
            &remote_toml(&bucket.name, &prefix, remote_extra),
        );
        std::fs::write(&ferry.sender_config, sender).unwrap();
        let work = ferry.scratch.path("work-1");
        let receiver = std::fs::read_to_string(&ferry.receiver_config).unwrap();
        let receiver = replace_table(
            &receiver,
            "inbox",
            &inbox_toml(&bucket.name, &prefix, &work),
        );
        std::fs::write(&ferry.receiver_config, &receiver).unwrap();
        let second = Receiver::beside(&ferry, &bucket.name, &prefix, "2");
        S3Ferry {
            ferry,
            bucket,
            prefix,
            second,
        }
    }

    pub fn sender(&self, args: &[&str]) -> Run {
        self.sender_as(Who::Writer, args)
    }

    pub fn sender_as(&self, who: Who, args: &[&str]) -> Run {
        run_as(who, &self.ferry.sender_config, "sender", args)
    }

    /// The sender with `who`'s keys and `extra` environment variables.
    pub fn sender_as_with(&self, who: Who, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let env = who.env();
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        let mut all = vec!["-c", self.ferry.sender_config.to_str().unwrap()];
        all.extend_from_slice(args);
        run_with("sender", &all, &env)
    }

    /// What the first receiver refused, in its work directory's `failed/`.
    pub fn receiver_failed(&self) -> Vec<String> {
        list_dir(&self.work_dir().join("failed"))
    }

    /// The first receiver, with the read-only key.
    pub fn receiver(&self, args: &[&str]) -> Run {
        run_as(Who::Reader, &self.ferry.receiver_config, "receiver", args)
    }

    pub fn second_receiver(&self, args: &[&str]) -> Run {
        run_as(Who::Reader, &self.second.config, "receiver", args)
    }

    /// Bundle names in the store, oldest first.
    pub fn stored(&self) -> Vec<String> {
        self.bucket
            .keys()
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_string))
            .collect()
    }

    pub fn work_dir(&self) -> PathBuf {
        self.ferry.scratch.path("work-1")
    }
}

impl Receiver {
    /// Another receiver of the same store, on a database of its own.
    pub fn beside(ferry: &Ferry, bucket: &str, prefix: &str, tag: &str) -> Receiver {
        let target = Db::create(Cluster::Secondary);
        let work = ferry.scratch.path(&format!("work-{tag}"));
        let text = receiver_toml(&ferry.scratch, &target, "");
        let text = replace_table(&text, "inbox", &inbox_toml(bucket, prefix, &work));
        let text = text.replace(
            &ferry.scratch.path("receiver-state").display().to_string(),
            &ferry
                .scratch
                .path(&format!("receiver-state-{tag}"))
                .display()
                .to_string(),
        );
        let config = ferry.scratch.write(&format!("receiver-{tag}.toml"), &text);
        Receiver {
            target,
            config,
            work,
        }
    }

    pub fn ledger(&self) -> Vec<String> {
        let text = self.target.sql("SELECT COALESCE(string_agg(bundle || ' ' || kind || ' ' || status, E'\\n' ORDER BY bundle), '') FROM pgferry.ledger");
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn failed(&self) -> Vec<String> {
        list_dir(&self.work.join("failed"))
    }
}

/// Runs `program` with `config` and `who`'s keys.
pub fn run_as(who: Who, config: &std::path::Path, program: &str, args: &[&str]) -> Run {
    let env = who.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = vec!["-c", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_with(program, &all, &env)
}
