//! Which entry paths a bundle may hold. Both sides check them: the sender so it never
//! writes a path the receiver would refuse, the receiver so a crafted bundle can never
//! write outside its directories (no absolute paths, no `..`, nothing odd).

use std::fmt;

/// What an entry is for, decided by its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Manifest,
    /// The manifest's minisign signature, after it.
    Signature,
    /// `schema/...`: DDL.
    Schema,
    /// `data/...`: dump parts of a complete bundle.
    Data,
    /// `rows/...`: CSV rows of a partial bundle.
    Rows,
    /// `changes/...`: a logical partial's changes, as CSV in commit order.
    Changes,
    /// `files/<set>/<relative path>`.
    File {
        set: String,
        relative: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafePath {
    pub path: String,
    pub reason: &'static str,
}

impl fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entry {:?} refused: {}", self.path, self.reason)
    }
}

impl std::error::Error for UnsafePath {}

/// Classifies a path, refusing anything that is not a plain relative path under one of the
/// known top-level directories.
pub fn classify(path: &str) -> Result<EntryKind, UnsafePath> {
    let refuse = |reason| {
        Err(UnsafePath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return refuse("empty path");
    }
    if path.starts_with('/') {
        return refuse("absolute path");
    }
    if path.contains('\0') || path.contains('\\') {
        return refuse("NUL or backslash in path");
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.contains(&"..") {
        return refuse("parent directory (..) in path");
    }
    if parts.iter().any(|p| p.is_empty() || *p == ".") {
        return refuse("empty or '.' path component");
    }
    if parts.iter().any(|p| p.chars().any(char::is_control)) {
        return refuse("control character in path");
    }
    match parts.as_slice() {
        [super::MANIFEST_PATH] => Ok(EntryKind::Manifest),
        [crate::seal::SIGNATURE_PATH] => Ok(EntryKind::Signature),
        ["schema", _] => Ok(EntryKind::Schema),
        ["data", _] => Ok(EntryKind::Data),
        ["rows", _] => Ok(EntryKind::Rows),
        ["changes", _] => Ok(EntryKind::Changes),
        ["files", set, rest @ ..] if !rest.is_empty() => Ok(EntryKind::File {
            set: set.to_string(),
            relative: rest.join("/"),
        }),
        _ => refuse("not a known bundle entry"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_are_classified() {
        assert_eq!(classify("MANIFEST.json"), Ok(EntryKind::Manifest));
        assert_eq!(classify("data/000001.sql"), Ok(EntryKind::Data));
        assert_eq!(
            classify("files/images/2026/a.jpeg"),
            Ok(EntryKind::File {
                set: "images".into(),
                relative: "2026/a.jpeg".into()
            })
        );
    }

    #[test]
    fn dangerous_paths_are_refused() {
        for (path, reason) in [
            ("/etc/passwd", "absolute path"),
            (
                "files/images/../../etc/passwd",
                "parent directory (..) in path",
            ),
            ("../x", "parent directory (..) in path"),
            ("files/images//a", "empty or '.' path component"),
            ("files/images/./a", "empty or '.' path component"),
            ("files/images", "not a known bundle entry"),
            ("other/x", "not a known bundle entry"),
            ("files/images/a\nb", "control character in path"),
        ] {
            assert_eq!(classify(path).unwrap_err().reason, reason, "{path}");
        }
    }
}
