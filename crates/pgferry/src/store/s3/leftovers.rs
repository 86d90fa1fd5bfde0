//! A sender killed during an upload leaves an unfinished multipart upload: invisible to a
//! list of objects, so no receiver takes it, but its parts take room. The next run of the
//! same job aborts it.

use rusty_s3::S3Action;
use serde::Deserialize;

use super::client::{Client, Verb, PLAIN};
use super::error::{self, S3Error};
use crate::bundle::{BundleName, Kind};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Page {
    #[serde(default, rename = "Upload")]
    uploads: Vec<InProgress>,
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: String,
    #[serde(default)]
    next_upload_id_marker: String,
}

/// An unfinished multipart upload.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InProgress {
    pub key: String,
    pub upload_id: String,
}

/// Aborts every unfinished upload of a bundle of `kind` under `prefix`; returns their keys.
pub fn abort_uploads_of(client: &Client, prefix: &str, kind: Kind) -> Result<Vec<String>, S3Error> {
    let mut aborted = Vec::new();
    for upload in in_progress(client, prefix)? {
        let is_of_kind = upload
            .key
            .strip_prefix(prefix)
            .and_then(BundleName::parse)
            .is_some_and(|name| name.kind == kind);
        if !is_of_kind {
            continue;
        }
        let url = client
            .bucket
            .abort_multipart_upload(None, &upload.key, &upload.upload_id)
            .sign(PLAIN);
        let operation = format!("abort the interrupted upload of {}", upload.key);
        match client.send(&operation, Verb::Delete, &url, &[], &[]) {
            // Completed or aborted since it was listed.
            Ok(_) | Err(S3Error::Answered { status: 404, .. }) => aborted.push(upload.key),
            Err(err) => return Err(err),
        }
    }
    Ok(aborted)
}

/// The unfinished multipart uploads under `prefix`.
pub fn in_progress(client: &Client, prefix: &str) -> Result<Vec<InProgress>, S3Error> {
    let operation = "list interrupted uploads";
    let mut all = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        // `rusty-s3` has no action for it: the bucket's URL with its query.
        let mut url = client.bucket.base_url().clone();
        url.set_query(Some("uploads"));
        if !prefix.is_empty() {
            url.query_pairs_mut().append_pair("prefix", prefix);
        }
        if let Some((key, id)) = &markers {
            url.query_pairs_mut()
                .append_pair("key-marker", key)
                .append_pair("upload-id-marker", id);
        }
        let text = client.get_text(operation, &url)?;
        let page: Page = quick_xml::de::from_str(&text)
            .map_err(|err| error::unreadable(operation, &client.label, err))?;
        all.extend(page.uploads);
        if !page.is_truncated || page.next_key_marker.is_empty() {
            return Ok(all);
        }
        markers = Some((page.next_key_marker, page.next_upload_id_marker));
    }
}
