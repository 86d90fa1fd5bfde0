//! An S3-compatible object store as a [`Store`]: bundles are objects under a prefix,
//! published by completing a multipart upload. A receiver needs only list and get.

pub mod client;
pub mod credentials;
pub mod error;
pub mod leftovers;
pub mod multipart;

use std::io::Read;
use std::sync::Arc;

use anyhow::Context;
use rusty_s3::S3Action;

use super::{Store, Stored, Upload};
use crate::bundle::{BundleName, Kind};
use crate::cause::{self, Cause};
use crate::settings::store::S3Settings;
use client::{Client, Verb, PLAIN};
pub use error::S3Error;

pub struct S3Store {
    client: Arc<Client>,
    prefix: String,
    /// Where the credentials came from, for `check`.
    pub credentials_source: String,
}

impl S3Store {
    /// Finds the credentials and prepares requests; nothing is sent yet.
    pub fn open(settings: &S3Settings) -> anyhow::Result<S3Store> {
        let found = credentials::find()?;
        S3Store::with_credentials(settings, found)
    }

    /// The same, with credentials found elsewhere.
    pub fn with_credentials(
        settings: &S3Settings,
        found: credentials::Found,
    ) -> anyhow::Result<S3Store> {
        let client = Client::new(settings, found.credentials)
            .map_err(|err| cause::tag(err, Cause::Config))?;
        Ok(S3Store {
            client: Arc::new(client),
            prefix: settings.prefix.clone(),
            credentials_source: found.source,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Every key under the prefix, with its size, in the store's order (by key).
    fn list_keys(&self) -> Result<Vec<(String, u64)>, S3Error> {
        let client = &self.client;
        let operation = "list the bundles";
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = client.bucket.list_objects_v2(None);
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.as_str());
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(PLAIN);
            let text = client.get_text(operation, &url)?;
            let page = rusty_s3::actions::ListObjectsV2::parse_response(&text)
                .map_err(|err| error::unreadable(operation, &client.label, err))?;
            keys.extend(
                page.contents
                    .into_iter()
                    .map(|object| (object.key, object.size.unwrap_or(0))),
            );
            match page.next_continuation_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(keys),
            }
        }
    }

    /// Writes a small object under the prefix, reads it back and deletes it: proof that
    /// the credentials may publish and delete there. Returns the probe's key.
    pub fn probe(&self) -> anyhow::Result<String> {
        let client = &self.client;
        let key = self.key(&format!(
            ".pgferry-probe-{}-{}",
            std::process::id(),
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.f")
        ));
        let content = format!("pgferry check probe {key}\n");
        let put = client.bucket.put_object(None, &key).sign(PLAIN);
        client.send(
            &format!("write the probe {key}"),
            Verb::Put,
            &put,
            &[],
            content.as_bytes(),
        )?;
        let read_back = self.read_small(&key);
        let delete = client.bucket.delete_object(None, &key).sign(PLAIN);
        client.send(
            &format!("delete the probe {key}"),
            Verb::Delete,
            &delete,
            &[],
            &[],
        )?;
        if read_back? != content {
            anyhow::bail!(
                "the probe {key} read back from {} differs from what was written",
                client.label
            );
        }
        Ok(key)
    }

    fn read_small(&self, key: &str) -> anyhow::Result<String> {
        let client = &self.client;
        let operation = format!("read {key}");
        let url = client.bucket.get_object(None, key).sign(PLAIN);
        Ok(client.get_text(&operation, &url)?)
    }
}

impl Store for S3Store {
    fn label(&self) -> String {
        self.client.label.clone()
    }

    fn list(&self) -> anyhow::Result<Vec<Stored>> {
        let keys = self.list_keys()?;
        let mut stored: Vec<Stored> = keys
            .into_iter()
            .filter_map(|(key, bytes)| {
                let name = BundleName::parse(key.strip_prefix(self.prefix.as_str())?)?;
                Some(Stored { name, bytes })
            })
            .collect();
        stored.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stored)
    }

    fn get(&self, name: &BundleName) -> anyhow::Result<Box<dyn Read + Send>> {
        let client = &self.client;
        let key = self.key(&name.file_name());
        let url = client.bucket.get_object(None, &key).sign(PLAIN);
        let response = client.send(&format!("read {key}"), Verb::Get, &url, &[], &[])?;
        let label = client.label.clone();
        Ok(Box::new(Download {
            body: response.into_body().into_reader(),
            what: format!("read {key} from {label}"),
        }))
    }

    fn put(&self, name: &BundleName) -> anyhow::Result<Box<dyn Upload>> {
        let key = self.key(&name.file_name());
        let upload = multipart::MultipartUpload::start(Arc::clone(&self.client), key)?;
        Ok(Box::new(upload))
    }

    fn delete(&self, name: &BundleName) -> anyhow::Result<()> {
        let client = &self.client;
        let key = self.key(&name.file_name());
        let url = client.bucket.delete_object(None, &key).sign(PLAIN);
        client.send(&format!("delete {key}"), Verb::Delete, &url, &[], &[])?;
        Ok(())
    }

    fn remove_leftovers(&self, kind: Kind) -> anyhow::Result<Vec<String>> {
        leftovers::abort_uploads_of(&self.client, &self.prefix, kind)
            .map_err(anyhow::Error::from)
            .context("abort interrupted uploads")
    }
}

/// A bundle read from the store; a failed read names the object.
struct Download {
    body: ureq::BodyReader<'static>,
    what: String,
}

impl Read for Download {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.body
            .read(buf)
            .map_err(|err| std::io::Error::new(err.kind(), format!("{}: {err}", self.what)))
    }
}
