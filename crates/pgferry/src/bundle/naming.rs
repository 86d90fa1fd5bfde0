//! Bundle file names. They sort by creation time across kinds, and a temporary upload has
//! a name the receiver never mistakes for a bundle.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::{Codec, Kind};

const PREFIX: &str = "pgferry-";
const TEMP_SUFFIX: &str = ".part";
/// The suffix of a bundle encrypted with age.
const AGE_SUFFIX: &str = ".age";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%.6fZ";

/// `pgferry-20261122T094500.123456Z-complete.tar.gz` (or `.tar.zst`: the codec), with
/// `.age` after it when the bundle is encrypted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleName {
    pub created: DateTime<Utc>,
    pub kind: Kind,
    pub codec: Codec,
    pub encrypted: bool,
}

impl BundleName {
    /// A gzip bundle's name; see [`BundleName::with_codec`].
    pub fn new(created: DateTime<Utc>, kind: Kind) -> BundleName {
        BundleName {
            created,
            kind,
            codec: Codec::Gzip,
            encrypted: false,
        }
    }

    pub fn with_codec(self, codec: Codec) -> BundleName {
        BundleName { codec, ..self }
    }

    pub fn encrypted(self, encrypted: bool) -> BundleName {
        BundleName { encrypted, ..self }
    }

    /// The name it is published under.
    pub fn file_name(&self) -> String {
        format!(
            "{PREFIX}{}-{}{}{}",
            self.created.format(TIME_FORMAT),
            self.kind,
            self.codec.suffix(),
            if self.encrypted { AGE_SUFFIX } else { "" }
        )
    }

    /// The name it is uploaded under: hidden, and ending in `.part`.
    pub fn temp_name(&self) -> String {
        format!(".{}{TEMP_SUFFIX}", self.file_name())
    }

    /// Parses a published name; anything else (temporary names included) is `None`.
    pub fn parse(file_name: &str) -> Option<BundleName> {
        let rest = file_name.strip_prefix(PREFIX)?;
        let (rest, encrypted) = match rest.strip_suffix(AGE_SUFFIX) {
            Some(rest) => (rest, true),
            None => (rest, false),
        };
        let (rest, codec) = [Codec::Gzip, Codec::Zstd]
            .into_iter()
            .find_map(|codec| Some((rest.strip_suffix(codec.suffix())?, codec)))?;
        let (time, kind) = rest.rsplit_once('-')?;
        let kind = match kind {
            "complete" => Kind::Complete,
            "partial" => Kind::Partial,
            _ => return None,
        };
        let created = NaiveDateTime::parse_from_str(time, TIME_FORMAT)
            .ok()?
            .and_utc();
        let name = BundleName {
            created,
            kind,
            codec,
            encrypted,
        };
        (name.file_name() == file_name).then_some(name)
    }

    /// A leftover of an interrupted upload of this kind.
    pub fn is_temp_of_kind(file_name: &str, kind: Kind) -> bool {
        file_name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
            .and_then(BundleName::parse)
            .is_some_and(|name| name.kind == kind)
    }
}

impl fmt::Display for BundleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn names_round_trip() {
        let name = BundleName::new(at("2026-11-22T09:45:00.123456Z"), Kind::Complete);
        assert_eq!(
            name.file_name(),
            "pgferry-20261122T094500.123456Z-complete.tar.gz"
        );
        assert_eq!(BundleName::parse(&name.file_name()), Some(name.clone()));
        let zstd = name.with_codec(Codec::Zstd);
        assert_eq!(
            zstd.file_name(),
            "pgferry-20261122T094500.123456Z-complete.tar.zst"
        );
        assert_eq!(BundleName::parse(&zstd.file_name()), Some(zstd.clone()));
        let sealed = zstd.encrypted(true);
        assert_eq!(
            sealed.file_name(),
            "pgferry-20261122T094500.123456Z-complete.tar.zst.age"
        );
        assert_eq!(BundleName::parse(&sealed.file_name()), Some(sealed));
    }

    #[test]
    fn names_sort_by_time_across_kinds() {
        let a = BundleName::new(at("2026-11-22T09:45:00Z"), Kind::Partial).file_name();
        let b = BundleName::new(at("2026-11-22T09:45:00.000001Z"), Kind::Complete).file_name();
        let c = BundleName::new(at("2026-11-22T10:00:00Z"), Kind::Partial).file_name();
        let mut names = vec![c.clone(), b.clone(), a.clone()];
        names.sort();
        assert_eq!(names, vec![a, b, c]);
    }

    #[test]
    fn temporary_and_foreign_names_are_not_bundles() {
        let name = BundleName::new(at("2026-11-22T09:45:00Z"), Kind::Partial);
        assert_eq!(BundleName::parse(&name.temp_name()), None);
        assert!(BundleName::is_temp_of_kind(
            &name.temp_name(),
            Kind::Partial
        ));
        assert!(!BundleName::is_temp_of_kind(
            &name.temp_name(),
            Kind::Complete
        ));
        assert_eq!(BundleName::parse("pgferry-x-complete.tar.gz"), None);
        assert_eq!(
            BundleName::parse("pgferry-20261122T094500.000000Z-complete.tar.bz2"),
            None
        );
        assert_eq!(BundleName::parse("notes.txt"), None);
    }
}
