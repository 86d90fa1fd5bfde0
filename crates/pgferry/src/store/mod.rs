//! Where bundles wait between the sender and the receivers: the receiver's SFTP directory or
//! an S3-compatible object store. Publishing, status, retention and the receiver's poll see
//! only [`Store`], so they do not know which one they talk to.
//!
//! What every store guarantees (guarantee 1): a bundle is visible under its final name only
//! once complete, a name is never written twice, and what an interrupted upload left is not
//! listed and is removed by the next run of the same job.

pub mod retention;
pub mod s3;
mod sftp;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::bundle::{BundleName, Kind};
use crate::cause::Cause;
use crate::settings::sender::Remote;

pub use s3::S3Store;
pub use sftp::SftpStore;

/// A published bundle in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub name: BundleName,
    pub bytes: u64,
}

/// A place bundles are published to and read from.
pub trait Store: Send + Sync {
    /// What to call the store in messages: `user@host:port:dir` or `s3://bucket/prefix`.
    fn label(&self) -> String;

    /// The published bundles, oldest first. Uploads in progress are never listed.
    fn list(&self) -> anyhow::Result<Vec<Stored>>;

    /// Reads a published bundle as a stream.
    fn get(&self, name: &BundleName) -> anyhow::Result<Box<dyn Read + Send>>;

    /// Starts an upload that nobody sees until [`Upload::publish`].
    fn put(&self, name: &BundleName) -> anyhow::Result<Box<dyn Upload>>;

    /// Deletes a published bundle.
    fn delete(&self, name: &BundleName) -> anyhow::Result<()>;

    /// Removes what interrupted uploads of `kind` left, and says what. Only this kind: the
    /// other kind's job may be uploading right now.
    fn remove_leftovers(&self, kind: Kind) -> anyhow::Result<Vec<String>>;
}

/// A bundle being streamed into a store. Dropping it unpublished gives it up: nothing of
/// it is visible, and what a broken link kept from being removed is a leftover for the
/// next run.
pub trait Upload: Write + Send {
    /// Makes the bundle visible under its final name, which must not exist yet; returns where.
    fn publish(self: Box<Self>) -> anyhow::Result<String>;

    /// Tells, after the upload is gone, whether one of its writes failed on the link.
    fn link_watch(&self) -> LinkWatch;
}

/// Whether an upload's write failed because the link to the store broke, not because of
/// the data fed to it. Kept apart from the upload, which goes down with the writer that
/// owns it when packing fails.
#[derive(Clone)]
pub struct LinkWatch {
    broken: Arc<AtomicBool>,
    /// What to blame when it broke.
    pub cause: Cause,
}

impl LinkWatch {
    pub fn new(broken: Arc<AtomicBool>, cause: Cause) -> LinkWatch {
        LinkWatch { broken, cause }
    }

    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::SeqCst)
    }
}

/// Opens the sender's store for a job, creating the SFTP inbox directory when missing.
pub fn open(remote: &Remote) -> anyhow::Result<Box<dyn Store>> {
    Ok(match remote {
        Remote::Sftp(sftp) => Box::new(SftpStore::connect(sftp)?),
        Remote::S3(s3) => Box::new(S3Store::open(&s3.store)?),
    })
}

/// Opens the store and removes the leftovers of this kind's interrupted uploads (guarantee 1).
pub fn open_for(remote: &Remote, kind: Kind) -> anyhow::Result<Box<dyn Store>> {
    let store = open(remote)?;
    let removed = store
        .remove_leftovers(kind)
        .map_err(|err| err.context(format!("clean up {}", store.label())))?;
    for name in removed {
        tracing::info!(store = %store.label(), leftover = %name, "removed the leftover of an interrupted upload");
    }
    Ok(store)
}
