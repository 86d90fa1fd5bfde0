//! The receiver's inbox directory over SFTP as a [`Store`]: upload under a temporary name,
//! fsync, rename into place (see [`crate::sftp`]).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::{LinkWatch, Store, Stored, Upload};
use crate::bundle::{BundleName, Kind};
use crate::cause::{Cause, CauseExt};
use crate::settings::sender::SftpRemote;
use crate::sftp::{self, Connection};

pub struct SftpStore {
    connection: Arc<Connection>,
}

impl SftpStore {
    /// Connects (host key checked, key authentication) and makes the inbox when missing.
    pub fn connect(remote: &SftpRemote) -> anyhow::Result<SftpStore> {
        let connection = sftp::connect(remote)?;
        connection.make_dir()?;
        Ok(SftpStore {
            connection: Arc::new(connection),
        })
    }
}

impl Store for SftpStore {
    fn label(&self) -> String {
        format!("{}:{}", self.connection.label, self.connection.dir)
    }

    fn list(&self) -> anyhow::Result<Vec<Stored>> {
        let connection = &self.connection;
        let entries = connection
            .sftp
            .readdir(Path::new(&connection.dir))
            .with_context(|| format!("list {}", self.label()))
            .cause(Cause::Link)?;
        let mut stored: Vec<Stored> = entries
            .into_iter()
            .filter(|(_, stat)| stat.is_file())
            .filter_map(|(path, stat)| {
                let name = BundleName::parse(path.file_name()?.to_str()?)?;
                Some(Stored {
                    name,
                    bytes: stat.size.unwrap_or(0),
                })
            })
            .collect();
        stored.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(stored)
    }

    fn get(&self, name: &BundleName) -> anyhow::Result<Box<dyn Read + Send>> {
        let path = self.connection.path(&name.file_name());
        let file = self
            .connection
            .sftp
            .open(Path::new(&path))
            .with_context(|| format!("open {path} on {}", self.connection.label))
            .cause(Cause::Link)?;
        Ok(Box::new(file))
    }

    fn put(&self, name: &BundleName) -> anyhow::Result<Box<dyn Upload>> {
        let upload = self.connection.create_temp(name)?;
        Ok(Box::new(SftpUpload {
            connection: Arc::clone(&self.connection),
            upload: Some(upload),
        }))
    }

    fn delete(&self, name: &BundleName) -> anyhow::Result<()> {
        let path = self.connection.path(&name.file_name());
        self.connection
            .sftp
            .unlink(Path::new(&path))
            .with_context(|| format!("delete {path} on {}", self.connection.label))
            .cause(Cause::Link)
    }

    fn remove_leftovers(&self, kind: Kind) -> anyhow::Result<Vec<String>> {
        self.connection.remove_leftovers(kind)
    }
}

struct SftpUpload {
    connection: Arc<Connection>,
    /// `None` once published.
    upload: Option<sftp::Upload>,
}

impl SftpUpload {
    fn file(&mut self) -> std::io::Result<&mut sftp::Upload> {
        self.upload
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the upload was published already"))
    }
}

impl Write for SftpUpload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file()?.flush()
    }
}

impl Upload for SftpUpload {
    fn publish(mut self: Box<Self>) -> anyhow::Result<String> {
        match self.upload.take() {
            Some(upload) => self.connection.publish(upload),
            None => anyhow::bail!("the upload was published already"),
        }
    }

    fn link_watch(&self) -> LinkWatch {
        LinkWatch::new(self.connection.broken_flag(), Cause::Link)
    }
}

impl Drop for SftpUpload {
    /// An upload given up: its temporary file goes (unless the link is broken, see
    /// [`Connection::discard`]).
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            let temp = upload.temp.clone();
            drop(upload);
            self.connection.discard(&temp);
        }
    }
}
