//! A bundle streamed into the store as a multipart upload, in bounded memory: parts of
//! [`PART_SIZE`], one filling while the one before it is sent by a worker thread, so memory
//! is two parts whatever the bundle's size. Nothing is visible until the completing request,
//! which carries `If-None-Match: *` so a name is never written twice; a failed or dropped
//! upload is aborted.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use rusty_s3::S3Action;

use super::client::{Client, Verb, PLAIN};
use super::error::S3Error;
use crate::cause::Cause;
use crate::store::{LinkWatch, Upload};

/// Every part but the last; S3 takes 5 MiB at least and 10,000 parts at most, so a bundle
/// may be up to 78 GiB.
pub const PART_SIZE: usize = 8 << 20;
const MAX_PARTS: usize = 10_000;

pub struct MultipartUpload {
    client: Arc<Client>,
    key: String,
    upload_id: String,
    buffer: Vec<u8>,
    parts: usize,
    sender: Option<SyncSender<(u16, Vec<u8>)>>,
    worker: Option<JoinHandle<Result<Vec<String>, S3Error>>>,
    broken: Arc<AtomicBool>,
    done: bool,
}

impl MultipartUpload {
    pub fn start(client: Arc<Client>, key: String) -> anyhow::Result<MultipartUpload> {
        let operation = format!("start the upload of {key}");
        // `?uploads`, not the `?uploads=1` of rusty-s3's action, which some stores (moto)
        // refuse.
        let mut url = client.bucket.object_url(&key);
        url.set_query(Some("uploads"));
        let response = client.send(&operation, Verb::Post, &url, &[], &[])?;
        let text = client.text(&operation, response)?;
        let upload_id = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .with_context(|| format!("{operation} on {}: unexpected answer", client.label))?
            .upload_id()
            .to_string();
        // A rendezvous channel: the worker takes the next part only once it sent the last.
        let (sender, parts) = sync_channel::<(u16, Vec<u8>)>(0);
        let broken = Arc::new(AtomicBool::new(false));
        let worker = {
            let (client, key, upload_id) = (Arc::clone(&client), key.clone(), upload_id.clone());
            std::thread::Builder::new()
                .name("s3-upload".into())
                .spawn(move || {
                    let mut etags = Vec::new();
                    for (number, part) in parts {
                        etags.push(send_part(&client, &key, &upload_id, number, &part)?);
                    }
                    Ok(etags)
                })
                .context("start the upload thread")?
        };
        Ok(MultipartUpload {
            client,
            key,
            upload_id,
            buffer: Vec::with_capacity(PART_SIZE),
            parts: 0,
            sender: Some(sender),
            worker: Some(worker),
            broken,
            done: false,
        })
    }

    /// Hands the buffer to the worker. A worker that stopped has failed: its error is the
    /// write's.
    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.parts == MAX_PARTS {
            return Err(std::io::Error::other(format!(
                "upload {}: the bundle is larger than {MAX_PARTS} parts of {PART_SIZE} bytes",
                self.key
            )));
        }
        self.parts += 1;
        // The next buffer is allocated only once the worker took this part (and so has
        // sent the one before): two parts in memory, not three.
        let part = std::mem::take(&mut self.buffer);
        let number = u16::try_from(self.parts).unwrap_or(u16::MAX);
        let sent = self
            .sender
            .as_ref()
            .map(|sender| sender.send((number, part)).is_ok())
            .unwrap_or(false);
        if sent {
            self.buffer = Vec::with_capacity(PART_SIZE);
            return Ok(());
        }
        self.broken.store(true, Ordering::SeqCst);
        let reason = match self.finish_worker() {
            Err(err) => err.to_string(),
            Ok(_) => "the upload thread stopped".to_string(),
        };
        Err(std::io::Error::other(format!(
            "upload {} to {}: {reason}",
            self.key, self.client.label
        )))
    }

    /// Closes the channel and waits for the worker: the parts' ETags, in order.
    fn finish_worker(&mut self) -> Result<Vec<String>, S3Error> {
        self.sender = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) | None => Ok(Vec::new()),
        }
    }

    fn complete(&mut self) -> anyhow::Result<String> {
        if !self.buffer.is_empty() || self.parts == 0 {
            self.send_buffer()?;
        }
        let etags = self.finish_worker()?;
        if etags.len() != self.parts {
            bail!(
                "upload {} to {}: {} of {} parts were sent",
                self.key,
                self.client.label,
                etags.len(),
                self.parts
            );
        }
        let client = &self.client;
        let operation = format!("publish {}", self.key);
        // The store may ignore `If-None-Match`: ask first too. Names carry the job's start
        // time and each job runs once at a time, so the answer cannot change in between.
        if exists(client, &self.key)? {
            bail!(
                "{operation} on {}: an object of that name exists already; a bundle name is never written twice",
                client.label
            );
        }
        let action = client.bucket.complete_multipart_upload(
            None,
            &self.key,
            &self.upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(PLAIN);
        let body = action.body();
        let response = client.send(
            &operation,
            Verb::Post,
            &url,
            &[("If-None-Match", "*")],
            body.as_bytes(),
        )?;
        // The store may report a failure inside a 200 answer.
        let text = client.text(&operation, response)?;
        if text.contains("<Error>") {
            return Err(super::error::answered(&operation, &client.label, 200, &text).into());
        }
        self.done = true;
        Ok(format!("s3://{}/{}", client.bucket.name(), self.key))
    }

    fn abort(&mut self) {
        let _ = self.finish_worker();
        if self.done {
            return;
        }
        self.done = true;
        let client = &self.client;
        let url = client
            .bucket
            .abort_multipart_upload(None, &self.key, &self.upload_id)
            .sign(PLAIN);
        if let Err(err) = client.send(
            &format!("abort the upload of {}", self.key),
            Verb::Delete,
            &url,
            &[],
            &[],
        ) {
            tracing::warn!(error = %err, "the next run of this job removes the upload's parts");
        }
    }
}

fn send_part(
    client: &Client,
    key: &str,
    upload_id: &str,
    number: u16,
    part: &[u8],
) -> Result<String, S3Error> {
    let url = client
        .bucket
        .upload_part(None, key, number, upload_id)
        .sign(PLAIN);
    let operation = format!("upload part {number} of {key}");
    let response = client.send(&operation, Verb::Put, &url, &[], part)?;
    Ok(response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// Whether an object of this key exists.
fn exists(client: &Client, key: &str) -> Result<bool, S3Error> {
    let url = client.bucket.head_object(None, key).sign(PLAIN);
    match client.send(&format!("look for {key}"), Verb::Head, &url, &[], &[]) {
        Ok(_) => Ok(true),
        Err(S3Error::Answered { status: 404, .. }) => Ok(false),
        Err(err) => Err(err),
    }
}

impl Write for MultipartUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = PART_SIZE - self.buffer.len();
        let taken = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..taken]);
        if self.buffer.len() == PART_SIZE {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Upload for MultipartUpload {
    fn publish(mut self: Box<Self>) -> anyhow::Result<String> {
        match self.complete() {
            Ok(published) => Ok(published),
            Err(err) => {
                self.abort();
                Err(err)
            }
        }
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::new(Arc::clone(&self.broken), Cause::Store)
    }
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        self.abort();
    }
}
