//! The SFTP side of the sender: connect with a checked host key and key authentication
//! (in one call, or step by step for `check-remote`), make the inbox, and publish a bundle
//! atomically (upload under a temporary name, fsync, rename). Every network step is bounded
//! by the configured timeout.

mod probe;

use std::io::{BufWriter, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use base64::Engine;
use ssh2::{CheckResult, HashType, KnownHostFileKind, MethodType, Session};

use crate::bundle::{BundleName, Kind};
use crate::cause::{self, Cause, CauseExt};
use crate::settings::sender::SftpRemote as Remote;

/// The host key is unknown or has changed: nothing may be sent.
#[derive(Debug, thiserror::Error)]
#[error("host key of {host} ({fingerprint}) {problem} in {known_hosts}; nothing was sent\nhint: if the server's key really is this one, add it with: ssh-keyscan -p {port} {bare_host} >> {known_hosts}")]
pub struct HostKeyError {
    pub host: String,
    pub bare_host: String,
    pub port: u16,
    pub fingerprint: String,
    pub problem: &'static str,
    pub known_hosts: String,
}

/// An authenticated SFTP connection to the receiver's inbox.
pub struct Connection {
    session: Session,
    pub sftp: ssh2::Sftp,
    pub label: String,
    pub dir: String,
    link: Link,
}

/// The session's TCP socket, and whether an upload found it broken. Once it is, every
/// further SSH call would wait out the timeout on a dead link again (cleanup, closing the
/// file, the session): shutting the socket down makes them fail at once.
#[derive(Clone)]
struct Link {
    socket: Arc<TcpStream>,
    broken: Arc<AtomicBool>,
}

impl Link {
    fn new(tcp: &TcpStream) -> anyhow::Result<Link> {
        Ok(Link {
            socket: Arc::new(tcp.try_clone().context("clone the TCP socket")?),
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    fn cut(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// What to call the connection in messages: `user@host:port`.
pub fn label(remote: &Remote) -> String {
    format!("{}@{}:{}", remote.user, remote.host, remote.port)
}

/// Connects, checks the host key against `known_hosts`, and authenticates with the key.
pub fn connect(remote: &Remote) -> anyhow::Result<Connection> {
    let tcp = open_tcp(remote)?;
    handshake(remote, tcp)?
        .check_host_key(remote)?
        .authenticate(remote)?
        .start_sftp(remote)
}

// The steps of `connect`, one at a time so `check-remote` can time and report each. Each
// step consumes the previous one's result, so the host key check cannot be skipped.

/// Step 1: a TCP connection to the server, with read and write timeouts set.
pub fn open_tcp(remote: &Remote) -> anyhow::Result<TcpStream> {
    tcp_connect(&remote.host, remote.port, remote.timeout())
        .with_context(|| format!("connect to {}", label(remote)))
        .cause(Cause::Link)
}

/// Step 2: the SSH handshake. Nothing may be sent until the host key is checked.
pub fn handshake(remote: &Remote, tcp: TcpStream) -> anyhow::Result<Unverified> {
    let label = label(remote);
    let mut session = Session::new().context("create an SSH session")?;
    let link = Link::new(&tcp)?;
    session.set_tcp_stream(tcp);
    session.set_timeout(u32::try_from(remote.timeout().as_millis()).unwrap_or(u32::MAX));
    prefer_known_key_types(&mut session, remote);
    session
        .handshake()
        .with_context(|| format!("SSH handshake with {label}"))
        .cause(Cause::Link)?;
    Ok(Unverified {
        session,
        label,
        link,
    })
}

/// An SSH session whose host key has not been checked yet.
pub struct Unverified {
    session: Session,
    label: String,
    link: Link,
}

impl Unverified {
    /// The server's identification string, such as `SSH-2.0-OpenSSH_9.2p1`.
    pub fn banner(&self) -> Option<&str> {
        self.session.banner()
    }

    /// The SHA-256 fingerprint of the host key, written as `ssh-keygen -l` does.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.session)
    }

    /// Step 3: the host key must be listed in `known_hosts` (guarantee 10).
    pub fn check_host_key(self, remote: &Remote) -> anyhow::Result<Verified> {
        check_host_key(&self.session, remote)?;
        Ok(Verified {
            session: self.session,
            label: self.label,
            link: self.link,
        })
    }
}

/// An SSH session with a checked host key, not yet authenticated.
pub struct Verified {
    session: Session,
    label: String,
    link: Link,
}

impl Verified {
    /// Step 4: public key authentication with the configured private key.
    pub fn authenticate(self, remote: &Remote) -> anyhow::Result<Authenticated> {
        let label = &self.label;
        self.session
            .userauth_pubkey_file(&remote.user, None, &remote.private_key, None)
            .with_context(|| {
                format!(
                    "authenticate to {label} with key {}",
                    remote.private_key.display()
                )
            })
            .cause(Cause::SshAuth)?;
        if !self.session.authenticated() {
            return Err(cause::tag(
                anyhow::anyhow!(
                    "authenticate to {label}: the server refused key {}",
                    remote.private_key.display()
                ),
                Cause::SshAuth,
            ));
        }
        Ok(Authenticated {
            session: self.session,
            label: self.label,
            link: self.link,
        })
    }
}

/// An authenticated SSH session, before SFTP.
pub struct Authenticated {
    session: Session,
    label: String,
    link: Link,
}

impl Authenticated {
    /// Step 5: the SFTP subsystem.
    pub fn start_sftp(self, remote: &Remote) -> anyhow::Result<Connection> {
        let sftp = self
            .session
            .sftp()
            .with_context(|| format!("start SFTP on {}", self.label))
            .cause(Cause::Link)?;
        Ok(Connection {
            session: self.session,
            sftp,
            label: self.label,
            dir: remote.dir.clone(),
            link: self.link,
        })
    }
}

fn tcp_connect(host: &str, port: u16, timeout: Duration) -> anyhow::Result<TcpStream> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolve {host}"))?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(err) => last = Some(err),
        }
    }
    match last {
        Some(err) => Err(err.into()),
        None => bail!("{host} resolves to no address"),
    }
}

/// The name `known_hosts` uses for this host: `host`, or `[host]:port` off port 22.
fn known_hosts_name(remote: &Remote) -> String {
    if remote.port == 22 {
        remote.host.clone()
    } else {
        format!("[{}]:{}", remote.host, remote.port)
    }
}

/// Asks the server for a host key of a type `known_hosts` lists for it, so a server with
/// several keys is not refused merely because it offered another type first.
fn prefer_known_key_types(session: &mut Session, remote: &Remote) {
    let Ok(text) = std::fs::read_to_string(&remote.known_hosts) else {
        return;
    };
    let name = known_hosts_name(remote);
    let mut types: Vec<String> = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(key_type)) = (fields.next(), fields.next()) else {
            continue;
        };
        if hosts.starts_with('#') || !hosts.split(',').any(|h| h == name) {
            continue;
        }
        let key_type = key_type.to_string();
        if key_type == "ssh-rsa" {
            for rsa in ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] {
                types.push(rsa.to_string());
            }
        } else if !types.contains(&key_type) {
            types.push(key_type);
        }
    }
    if !types.is_empty() {
        let _ = session.method_pref(MethodType::HostKey, &types.join(","));
    }
}

fn fingerprint(session: &Session) -> String {
    session
        .host_key_hash(HashType::Sha256)
        .map(|hash| {
            format!(
                "SHA256:{}",
                base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
            )
        })
        .unwrap_or_else(|| "unknown fingerprint".to_string())
}

fn check_host_key(session: &Session, remote: &Remote) -> anyhow::Result<()> {
    let (key, _) = session.host_key().context("the server sent no host key")?;
    let fingerprint = fingerprint(session);
    let mut known = session
        .known_hosts()
        .context("set up known_hosts checking")?;
    known
        .read_file(&remote.known_hosts, KnownHostFileKind::OpenSSH)
        .with_context(|| format!("read known_hosts {}", remote.known_hosts.display()))?;
    let problem = match known.check_port(&remote.host, remote.port, key) {
        CheckResult::Match => return Ok(()),
        CheckResult::NotFound => "is not listed",
        CheckResult::Mismatch => "DOES NOT MATCH the key listed",
        CheckResult::Failure => "could not be checked",
    };
    Err(HostKeyError {
        host: format!("{}:{}", remote.host, remote.port),
        bare_host: remote.host.clone(),
        port: remote.port,
        fingerprint,
        problem,
        known_hosts: remote.known_hosts.display().to_string(),
    }
    .into())
}

impl Connection {
    pub(crate) fn path(&self, name: &str) -> String {
        format!("{}/{}", self.dir.trim_end_matches('/'), name)
    }

    /// Creates the inbox and its parents when missing.
    pub fn make_dir(&self) -> anyhow::Result<()> {
        let mut current = String::new();
        for part in self.dir.split('/') {
            if part.is_empty() {
                current.push('/');
                continue;
            }
            if !current.is_empty() && !current.ends_with('/') {
                current.push('/');
            }
            current.push_str(part);
            if self.sftp.stat(Path::new(&current)).is_err() {
                self.sftp
                    .mkdir(Path::new(&current), 0o755)
                    .with_context(|| format!("create directory {current} on {}", self.label))
                    .cause(Cause::Link)?;
            }
        }
        Ok(())
    }

    /// Deletes leftovers of interrupted uploads of this kind. Only this kind: the other
    /// kind's job may be uploading right now.
    pub fn remove_leftovers(&self, kind: Kind) -> anyhow::Result<Vec<String>> {
        let entries = self
            .sftp
            .readdir(Path::new(&self.dir))
            .with_context(|| format!("list {} on {}", self.dir, self.label))
            .cause(Cause::Link)?;
        let mut removed = Vec::new();
        for (path, _) in entries {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if BundleName::is_temp_of_kind(name, kind) {
                self.sftp.unlink(&path).with_context(|| {
                    format!("remove leftover {} on {}", path.display(), self.label)
                })?;
                removed.push(name.to_string());
            }
        }
        Ok(removed)
    }

    /// Opens the temporary file a bundle is streamed into.
    pub fn create_temp(&self, name: &BundleName) -> anyhow::Result<Upload> {
        let temp = self.path(&name.temp_name());
        // Owner-only: a bundle holds the database's data (the receiver runs as the same account).
        let file = self
            .sftp
            .open_mode(
                Path::new(&temp),
                ssh2::OpenFlags::WRITE | ssh2::OpenFlags::CREATE | ssh2::OpenFlags::TRUNCATE,
                0o600,
                ssh2::OpenType::File,
            )
            .with_context(|| format!("create {temp} on {}", self.label))
            .cause(Cause::Link)?;
        Ok(Upload {
            file: BufWriter::with_capacity(1 << 20, file),
            temp,
            final_path: self.path(&name.file_name()),
            label: self.label.clone(),
            link: self.link.clone(),
        })
    }

    /// Makes an uploaded bundle visible: fsync, close, rename into place.
    pub fn publish(&self, upload: Upload) -> anyhow::Result<String> {
        let published = self.close_and_rename(upload);
        if published.is_err() {
            // This connection is given up: do not wait out the timeout again on drop.
            self.link.cut();
        }
        published
    }

    fn close_and_rename(&self, upload: Upload) -> anyhow::Result<String> {
        let Upload {
            file,
            temp,
            final_path,
            ..
        } = upload;
        let mut file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("write {temp} on {}", self.label))
            .cause(Cause::Link)?;
        file.fsync()
            .with_context(|| format!("fsync {temp} on {}", self.label))
            .cause(Cause::Link)?;
        file.close()
            .with_context(|| format!("close {temp} on {}", self.label))
            .cause(Cause::Link)?;
        drop(file);
        self.sftp
            .rename(Path::new(&temp), Path::new(&final_path), None)
            .with_context(|| format!("rename {temp} to {final_path} on {}", self.label))
            .cause(Cause::Link)?;
        Ok(final_path)
    }

    /// Best-effort removal of a failed upload's temporary file.
    /// On a broken link it only cuts the socket: the next run's leftover cleanup deletes
    /// the file, and waiting out the timeout once more would help nobody.
    pub fn discard(&self, temp: &str) {
        if self.link.broken.load(Ordering::SeqCst) {
            self.link.cut();
            return;
        }
        let _ = self.sftp.unlink(Path::new(temp));
    }
}

/// A bundle being streamed to its temporary name.
pub struct Upload {
    file: BufWriter<ssh2::File>,
    pub temp: String,
    final_path: String,
    label: String,
    link: Link,
}

impl Connection {
    /// The flag an upload's failed write sets, to read after the upload is gone.
    pub fn broken_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.link.broken)
    }
}

impl Upload {
    /// A failed write names the upload (not the dump that feeds it) and marks the link
    /// broken.
    fn failed(&self, err: std::io::Error) -> std::io::Error {
        self.link.broken.store(true, Ordering::SeqCst);
        std::io::Error::new(
            err.kind(),
            format!("upload {} to {}: {err}", self.temp, self.label),
        )
    }
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(|err| self.failed(err))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(|err| self.failed(err))
    }
}
