//! Where bundles go: the sender's `[remote]` and the receiver's `[inbox]`, each either the
//! SFTP directory of the first round (the default, so older configs keep working) or an
//! S3-compatible object store (`kind = "s3"`).
//!
//! Both tables are read as one flat set of optional keys first, so an unknown key is named
//! with its line like anywhere else, and then turned into the typed kind; a key that belongs
//! to the other kind is named as such.

use std::path::PathBuf;

use serde::Deserialize;

use super::values::{Duration, Size};

/// The sender's `[remote]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRemote")]
pub enum Remote {
    Sftp(SftpRemote),
    S3(S3Remote),
}

/// `[remote]` of kind `sftp`: the receiver's SSH account and inbox directory.
#[derive(Debug, Clone)]
pub struct SftpRemote {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub private_key: PathBuf,
    pub known_hosts: PathBuf,
    pub dir: String,
    /// Limit for every network step (connect, handshake, each SFTP call); default 60s.
    pub timeout: Option<Duration>,
}

/// `[remote]` of kind `s3`.
#[derive(Debug, Clone)]
pub struct S3Remote {
    pub store: S3Settings,
    /// The store keeps this many complete bundles and every bundle after the oldest of them.
    pub keep_completes: u32,
}

/// The keys both sides give for an S3-compatible store. Credentials are never here: they
/// come from the standard AWS environment variables or the shared credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `https://s3.example.org`, or `http://127.0.0.1:9000` for a store on loopback.
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    /// Bundles are objects under this prefix (`transapp/`); empty for the bucket's top.
    pub prefix: String,
    /// `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key`.
    pub path_style: bool,
    /// Limit for connecting and for each read or write of a request; default 60s.
    pub timeout: Option<Duration>,
}

impl S3Settings {
    /// `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(Duration::as_std)
            .unwrap_or(std::time::Duration::from_secs(60))
    }
}

/// How many complete bundles the store keeps when `keep_completes` is left out.
pub const DEFAULT_KEEP_COMPLETES: u32 = 2;

impl Remote {
    /// The same store with its timeout capped: for a look that must not keep an operator
    /// waiting on a link that is down (`sender status`).
    pub fn with_timeout_at_most(&self, limit: std::time::Duration) -> Remote {
        let mut remote = self.clone();
        match &mut remote {
            Remote::Sftp(sftp) => sftp.timeout = Some(Duration(sftp.timeout().min(limit))),
            Remote::S3(s3) => s3.store.timeout = Some(Duration(s3.store.timeout().min(limit))),
        }
        remote
    }

    /// What to call the store in messages, as [`crate::store::Store::label`] does.
    pub fn describe(&self) -> String {
        match self {
            Remote::Sftp(sftp) => format!("{}@{}:{}:{}", sftp.user, sftp.host, sftp.port, sftp.dir),
            Remote::S3(s3) => s3.store.describe(),
        }
    }

    /// How many complete bundles the store keeps, when the sender prunes it: an SFTP
    /// inbox is emptied by its receiver instead.
    pub fn keep_completes(&self) -> Option<u32> {
        match self {
            Remote::Sftp(_) => None,
            Remote::S3(s3) => Some(s3.keep_completes),
        }
    }
}

impl SftpRemote {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout
            .map(Duration::as_std)
            .unwrap_or(std::time::Duration::from_secs(60))
    }
}

/// The receiver's `[inbox]`: a local directory, filled by the sender over SFTP or, with
/// `store`, fetched from an S3-compatible store into it (then a work directory).
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawInbox")]
pub struct Inbox {
    pub dir: PathBuf,
    /// `check` warns, and `load` refuses, below this much free space (default 1GiB).
    pub min_free: Option<Size>,
    pub store: Option<S3Settings>,
}

impl Inbox {
    pub fn min_free(&self) -> u64 {
        self.min_free.map(|s| s.0).unwrap_or(1 << 30)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    #[default]
    Sftp,
    S3,
}

/// The S3 keys, shared by both tables.
struct RawS3 {
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    host: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    private_key: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    dir: Option<String>,
    timeout: Option<Duration>,
    #[serde(default)]
    kind: Kind,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
    keep_completes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInbox {
    dir: PathBuf,
    min_free: Option<Size>,
    #[serde(default)]
    kind: Kind,
    timeout: Option<Duration>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    prefix: Option<String>,
    path_style: Option<bool>,
}

fn required<T>(value: Option<T>, key: &str, what: &str) -> Result<T, String> {
    value.ok_or_else(|| format!("required key `{key}` is missing, expected {what}"))
}

/// Refuses the keys of the other kind, naming the first one given.
fn refuse_other_kind<'a>(
    given: impl IntoIterator<Item = (&'a str, bool)>,
    kind: &str,
) -> Result<(), String> {
    match given.into_iter().find(|(_, present)| *present) {
        Some((key, _)) => Err(format!(
            "key `{key}` belongs to kind = \"{kind}\"; set kind = \"{kind}\" or remove it"
        )),
        None => Ok(()),
    }
}

impl RawS3 {
    /// Each key, and whether it was given.
    fn given(&self) -> [(&'static str, bool); 5] {
        [
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("bucket", self.bucket.is_some()),
            ("prefix", self.prefix.is_some()),
            ("path_style", self.path_style.is_some()),
        ]
    }

    fn settings(self, timeout: Option<Duration>) -> Result<S3Settings, String> {
        let endpoint = required(
            self.endpoint,
            "endpoint",
            "the store's URL, like \"https://s3.example.org\"",
        )?;
        let url = endpoint.trim_end_matches('/');
        let Some((scheme, host)) = url.split_once("://") else {
            return Err(format!(
                "endpoint {endpoint:?} is not a URL; expected like \"https://s3.example.org\""
            ));
        };
        if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains('/') {
            return Err(format!(
                "endpoint {endpoint:?}: expected http:// or https:// and a host, without a path (the bucket and prefix have keys of their own)"
            ));
        }
        let bucket = required(self.bucket, "bucket", "the bucket's name")?;
        // S3's rule for bucket names: 3 to 63 lowercase letters, digits, dots and hyphens.
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid_bucket {
            return Err(format!(
                "bucket {bucket:?}: expected 3 to 63 lowercase letters, digits, dots or hyphens"
            ));
        }
        let mut prefix = self.prefix.unwrap_or_default();
        if prefix.starts_with('/') {
            return Err(format!(
                "prefix {prefix:?}: expected a key prefix without a leading slash, like \"transapp/\""
            ));
        }
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Settings {
            endpoint: url.to_string(),
            region: required(
                self.region,
                "region",
                "the store's region, like \"us-east-1\"",
            )?,
            bucket,
            prefix,
            path_style: self.path_style.unwrap_or(false),
            timeout,
        })
    }
}

impl TryFrom<RawRemote> for Remote {
    type Error = String;

    fn try_from(raw: RawRemote) -> Result<Self, String> {
        let s3 = RawS3 {
            endpoint: raw.endpoint,
            region: raw.region,
            bucket: raw.bucket,
            prefix: raw.prefix,
            path_style: raw.path_style,
        };
        match raw.kind {
            Kind::Sftp => {
                let keep = ("keep_completes", raw.keep_completes.is_some());
                refuse_other_kind(s3.given().into_iter().chain([keep]), "s3")?;
                Ok(Remote::Sftp(SftpRemote {
                    host: required(raw.host, "host", "the receiver's SSH host")?,
                    port: required(raw.port, "port", "the SSH port, like 22")?,
                    user: required(raw.user, "user", "the SSH account")?,
                    private_key: required(raw.private_key, "private_key", "a key file")?,
                    known_hosts: required(raw.known_hosts, "known_hosts", "a known_hosts file")?,
                    dir: required(raw.dir, "dir", "the inbox directory on the receiver")?,
                    timeout: raw.timeout,
                }))
            }
            Kind::S3 => {
                refuse_other_kind(
                    [
                        ("host", raw.host.is_some()),
                        ("port", raw.port.is_some()),
                        ("user", raw.user.is_some()),
                        ("private_key", raw.private_key.is_some()),
                        ("known_hosts", raw.known_hosts.is_some()),
                        ("dir", raw.dir.is_some()),
                    ],
                    "sftp",
                )?;
                let keep_completes = raw.keep_completes.unwrap_or(DEFAULT_KEEP_COMPLETES);
                if keep_completes == 0 {
                    return Err("keep_completes = 0 would delete every complete bundle, and a receiver that joins needs one; expected 1 or more".into());
                }
                Ok(Remote::S3(S3Remote {
                    store: s3.settings(raw.timeout)?,
                    keep_completes,
                }))
            }
        }
    }
}

impl TryFrom<RawInbox> for Inbox {
    type Error = String;

    fn try_from(raw: RawInbox) -> Result<Self, String> {
        let s3 = RawS3 {
            endpoint: raw.endpoint,
            region: raw.region,
            bucket: raw.bucket,
            prefix: raw.prefix,
            path_style: raw.path_style,
        };
        let store = match raw.kind {
            Kind::Sftp => {
                let timeout = ("timeout", raw.timeout.is_some());
                refuse_other_kind(s3.given().into_iter().chain([timeout]), "s3")?;
                None
            }
            Kind::S3 => Some(s3.settings(raw.timeout)?),
        };
        Ok(Inbox {
            dir: raw.dir,
            min_free: raw.min_free,
            store,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(text: &str) -> Result<Remote, String> {
        toml::from_str::<Remote>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn an_s3_remote_takes_its_keys_and_defaults() {
        let Ok(Remote::S3(s3)) = remote(
            "kind = \"s3\"\nendpoint = \"https://s3.example.org/\"\nregion = \"eu-1\"\nbucket = \"ferry\"\nprefix = \"transapp\"\n",
        ) else {
            panic!("not an s3 remote");
        };
        assert_eq!(s3.keep_completes, DEFAULT_KEEP_COMPLETES);
        assert_eq!(s3.store.endpoint, "https://s3.example.org");
        assert_eq!(s3.store.prefix, "transapp/");
        assert!(!s3.store.path_style);
    }

    #[test]
    fn keys_of_the_other_kind_and_bad_values_are_named() {
        let err = remote("host = \"h\"\nport = 22\nuser = \"u\"\nprivate_key = \"k\"\nknown_hosts = \"kh\"\ndir = \"d\"\nbucket = \"b\"\n").unwrap_err();
        assert!(
            err.contains("key `bucket` belongs to kind = \"s3\""),
            "{err}"
        );
        let err = remote("kind = \"s3\"\nendpoint = \"https://e\"\nregion = \"r\"\nbucket = \"b\"\ndir = \"d\"\n").unwrap_err();
        assert!(
            err.contains("key `dir` belongs to kind = \"sftp\""),
            "{err}"
        );
        let err = remote("kind = \"s3\"\nendpoint = \"https://e\"\nregion = \"r\"\n").unwrap_err();
        assert!(err.contains("required key `bucket` is missing"), "{err}");
        let err = remote(
            "kind = \"s3\"\nendpoint = \"https://e\"\nregion = \"r\"\nbucket = \"Bad_Bucket\"\n",
        )
        .unwrap_err();
        assert!(err.contains("bucket \"Bad_Bucket\""), "{err}");
        let err = remote(
            "kind = \"s3\"\nendpoint = \"s3.example.org\"\nregion = \"r\"\nbucket = \"b12\"\n",
        )
        .unwrap_err();
        assert!(err.contains("is not a URL"), "{err}");
        let err = remote("kind = \"s3\"\nendpoint = \"https://e\"\nregion = \"r\"\nbucket = \"b12\"\nkeep_completes = 0\n").unwrap_err();
        assert!(err.contains("keep_completes = 0"), "{err}");
        let err = remote("kind = \"ftp\"\n").unwrap_err();
        assert!(err.contains("unknown variant `ftp`"), "{err}");
    }

    #[test]
    fn an_inbox_is_a_directory_unless_it_names_a_store() {
        let inbox: Inbox = toml::from_str("dir = \"/srv/inbox\"\n").unwrap();
        assert_eq!(inbox.store, None);
        let inbox: Inbox = toml::from_str(
            "dir = \"/srv/work\"\nkind = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"us-east-1\"\nbucket = \"ferry\"\npath_style = true\n",
        )
        .unwrap();
        let store = inbox.store.unwrap();
        assert!(store.path_style);
        assert_eq!(store.prefix, "");
        let err = toml::from_str::<Inbox>("dir = \"/srv/inbox\"\nbucket = \"ferry\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `bucket` belongs to kind = \"s3\""),
            "{err}"
        );
    }
}
