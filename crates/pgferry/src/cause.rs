//! Why a job failed, in the kinds an operator acts on differently. The cause travels in the
//! error chain, attached where the failure happens (not guessed later from its words), and
//! is mapped once, in the table of [`Cause::exit`] and [`Cause::check`], to the process
//! exit code and the alert's "what to check".

use std::fmt;

use crate::exit::Exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A config file that does not parse or validate.
    Config,
    /// Another run of the same job holds its lock.
    Lock,
    /// The receiver's SSH host key is unknown or changed.
    HostKey,
    /// The SSH server refused the key.
    SshAuth,
    /// The network path to the receiver, its sshd or the SFTP session.
    Link,
    /// The object store: unreachable, not answering, or failing on its side.
    Store,
    /// The object store refused the credentials or what they may do, or has no such bucket.
    StoreAccess,
    /// The source or target database: down, unreachable, or a query that failed.
    Database,
    /// A bundle that failed verification.
    BundleDamaged,
    /// A bundle not signed by a trusted key, or that this receiver cannot decrypt.
    BundleUntrusted,
    /// A `[bundle]` key file that cannot be read or used.
    Keys,
    /// A bundle the target refused for what it holds; it blocks the queue.
    BundleRefused,
    /// Not enough room on a disk of the receiver.
    Disk,
    /// The post-processing hook.
    Hook,
    /// Nothing applied for `stale_after`.
    Stale,
}

impl Cause {
    /// The exit code of a command that failed with this cause.
    pub fn exit(self) -> Exit {
        match self {
            Cause::Config => Exit::Usage,
            Cause::Lock => Exit::Locked,
            _ => Exit::Failed,
        }
    }

    /// What an operator should look at first.
    pub fn check(self) -> &'static str {
        match self {
            Cause::Config => "the config file and key named above; run `check` on this side.",
            Cause::Lock => "nothing: another run of the job was still busy, and this one was skipped.",
            Cause::HostKey => "the receiver's SSH host key changed or is not in remote.known_hosts. Confirm the new key with the receiver's admin before adding it; never trust it blindly.",
            Cause::SshAuth => "the SSH key: remote.private_key must be readable by pgferry and its public key listed in the receiver account's authorized_keys.",
            Cause::Link => "the network path to the receiver and its sshd: is the host up, the port right, a firewall in the way? Run `sender check-remote`.",
            Cause::Store => "the object store: is the endpoint right and the store up and answering? The error above has the store's own code and message. Run `check` on this side.",
            Cause::StoreAccess => "the S3 credentials and bucket: which source `check` reports (AWS_ACCESS_KEY_ID or the shared credentials file with AWS_PROFILE), the bucket's name and region, and that the key may list and read there (and, for the sender, write and delete). Run `check` on this side.",
            Cause::Database => "the database: is it up and reachable with the configured libpq settings, and are the credentials in ~/.pgpass? Run `check` on this side.",
            Cause::BundleDamaged => "the bundle was damaged or tampered with on the way; it was moved to failed/ in the inbox. The next complete bundle repairs the target: run `sender complete` on the primary.",
            Cause::BundleUntrusted => "the [bundle] keys: a bundle not signed by a trusted key, or that none of the identities opens, was moved to failed/ with its reason beside it. If the sender moved to a new signing key or new recipients, add its public key to [bundle] trusted_keys or its identity to [bundle] identities (`receiver check` shows what each key is). Otherwise someone other than the sender wrote to the store: check who may write there. The next complete bundle repairs the target: run `sender complete` on the primary.",
            Cause::Keys => "the [bundle] key file named above: it must exist, hold a key of the right kind (minisign or age), be readable by the account pgferry runs as, and a secret key must not be readable by others. Run `check` on this side.",
            Cause::BundleRefused => "the target refused the bundle named above, which now blocks the receiver's queue (see `receiver status`). The next complete bundle supersedes it: run `sender complete` on the primary, with [complete] on_schema_change = \"recreate\" on the receiver for a schema change. Or fix the target: the next load retries the bundle.",
            Cause::Disk => "free disk space on the receiver (inbox and file directories).",
            Cause::Hook => "the [postprocess] command: run it by hand with the PGFERRY_* variables from the log.",
            Cause::Stale => "the sender: is it running, and do its partial and complete jobs succeed? Then `receiver status` and the receiver's log.",
        }
    }

    /// The cause of `err`: the first one attached in its chain, or known from a typed error.
    pub fn of(err: &anyhow::Error) -> Option<Cause> {
        err.chain().find_map(|link| {
            if let Some(tagged) = link.downcast_ref::<Tagged>() {
                return Some(tagged.cause);
            }
            if link
                .downcast_ref::<crate::settings::ConfigError>()
                .is_some()
            {
                return Some(Cause::Config);
            }
            if link.downcast_ref::<crate::lock::LockHeld>().is_some() {
                return Some(Cause::Lock);
            }
            if link.downcast_ref::<crate::sftp::HostKeyError>().is_some() {
                return Some(Cause::HostKey);
            }
            if let Some(err) = link.downcast_ref::<crate::bundle::reader::VerifyError>() {
                return Some(match err.problem {
                    crate::bundle::reader::Problem::Untrusted(_) => Cause::BundleUntrusted,
                    crate::bundle::reader::Problem::Damaged(_) => Cause::BundleDamaged,
                });
            }
            if let Some(rejected) = link.downcast_ref::<crate::bundle::reader::Rejected>() {
                return Some(if rejected.any_untrusted() {
                    Cause::BundleUntrusted
                } else {
                    Cause::BundleDamaged
                });
            }
            if link.downcast_ref::<crate::seal::KeyFileError>().is_some() {
                return Some(Cause::Keys);
            }
            if let Some(s3) = link.downcast_ref::<crate::store::s3::S3Error>() {
                return Some(if s3.is_access() {
                    Cause::StoreAccess
                } else {
                    Cause::Store
                });
            }
            if link
                .downcast_ref::<crate::store::s3::credentials::CredentialsError>()
                .is_some()
            {
                return Some(Cause::StoreAccess);
            }
            let io = link.downcast_ref::<std::io::Error>()?;
            if io.kind() == std::io::ErrorKind::StorageFull {
                return Some(Cause::Disk);
            }
            None
        })
    }
}

/// An error with its cause attached. It reads exactly as the error it wraps: the same
/// message, the same causes after it.
pub struct Tagged {
    cause: Cause,
    error: anyhow::Error,
}

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({:?})", self.error, self.cause)
    }
}

impl std::error::Error for Tagged {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Attaches a cause to an error, or to the error of a result.
pub trait CauseExt<T> {
    fn cause(self, cause: Cause) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> CauseExt<T> for Result<T, E> {
    fn cause(self, cause: Cause) -> anyhow::Result<T> {
        self.map_err(|err| tag(err.into(), cause))
    }
}

/// `err` with `cause` attached.
pub fn tag(err: anyhow::Error, cause: Cause) -> anyhow::Error {
    anyhow::Error::new(Tagged { cause, error: err })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_tagged_error_reads_as_before_and_keeps_its_cause_under_context() {
        let inner: anyhow::Result<()> = Err(anyhow::anyhow!("connection refused"));
        let err = inner
            .context("connect to host:22")
            .cause(Cause::Link)
            .context("make bundle b")
            .unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "make bundle b: connect to host:22: connection refused"
        );
        assert_eq!(err.chain().count(), 3);
        assert_eq!(Cause::of(&err), Some(Cause::Link));
        assert_eq!(Cause::of(&err).map(Cause::exit), Some(Exit::Failed));
    }

    #[test]
    fn the_innermost_attached_cause_does_not_hide_an_outer_one() {
        let err = tag(
            tag(anyhow::anyhow!("boom"), Cause::Database).context("load bundle x"),
            Cause::BundleRefused,
        );
        assert_eq!(Cause::of(&err), Some(Cause::BundleRefused));
        assert_eq!(format!("{err:#}"), "load bundle x: boom");
    }

    #[test]
    fn typed_errors_have_their_causes_without_tags() {
        let full = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::StorageFull))
            .context("write file");
        assert_eq!(Cause::of(&full), Some(Cause::Disk));
        assert_eq!(Cause::of(&anyhow::anyhow!("something else")), None);
        let denied = crate::store::s3::error::answered("list", "s3://b/", 403, "");
        assert_eq!(
            Cause::of(&anyhow::Error::new(denied).context("check")),
            Some(Cause::StoreAccess)
        );
        let busy = crate::store::s3::error::answered("list", "s3://b/", 503, "");
        assert_eq!(Cause::of(&anyhow::Error::new(busy)), Some(Cause::Store));
        assert_eq!(Cause::Config.exit(), Exit::Usage);
        assert_eq!(Cause::Lock.exit(), Exit::Locked);
    }
}
