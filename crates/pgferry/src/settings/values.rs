//! Typed config values written as text: durations (`90s`, `4d`), sizes (`512MiB`) and cron
//! schedules. Each parses while the file is read, so a bad value is reported with its key
//! and line.

use std::fmt;
use std::str::FromStr;

/// A span of time written like `90s`, `5m`, `2h`, `4d` or `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn as_chrono(self) -> chrono::Duration {
        chrono::Duration::from_std(self.0).unwrap_or(chrono::Duration::MAX)
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.is_empty() || text.starts_with(|c: char| !c.is_ascii_digit()) {
            return Err(format!(
                "invalid duration {text:?}, expected a number with a unit like \"90s\", \"5m\", \"2h\" or \"4d\""
            ));
        }
        humantime::parse_duration(text).map(Duration).map_err(|err| {
            format!(
                "invalid duration {text:?} ({err}), expected a number with a unit like \"90s\", \"5m\", \"2h\" or \"4d\""
            )
        })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A number of bytes written like `512MiB`, `10GB` or `4096`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let valid_start = trimmed.starts_with(|c: char| c.is_ascii_digit());
        match trimmed.parse::<bytesize::ByteSize>() {
            Ok(size) if valid_start => Ok(Size(size.as_u64())),
            _ => Err(format!(
                "invalid size {text:?}, expected a number with a unit like \"512MiB\", \"2GiB\" or \"100MB\""
            )),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", bytesize::ByteSize(self.0).to_string_as(true))
    }
}

/// A cron schedule: 5 fields (`*/5 * * * *`) or 6 with seconds first. Stored with seconds,
/// the form the scheduler wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    written: String,
    with_seconds: String,
}

impl Schedule {
    /// The 6-field form, seconds first.
    pub fn cron(&self) -> &str {
        &self.with_seconds
    }

    /// The schedule's next firing strictly after `after`.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let cron = croner::Cron::new(&self.with_seconds)
            .with_seconds_required()
            .parse()
            .ok()?;
        cron.find_next_occurrence(&after, false).ok()
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fields = text.split_whitespace().count();
        let with_seconds = match fields {
            5 => format!("0 {}", text.trim()),
            6 => text.split_whitespace().collect::<Vec<_>>().join(" "),
            _ => {
                return Err(format!(
                    "invalid cron schedule {text:?}: it has {fields} fields, expected 5 (\"*/5 * * * *\") or 6 with seconds first"
                ))
            }
        };
        croner::Cron::new(&with_seconds)
            .with_seconds_required()
            .parse()
            .map_err(|err| {
                format!("invalid cron schedule {text:?} ({err}), expected 5 fields like \"*/5 * * * *\" or 6 with seconds first")
            })?;
        Ok(Schedule {
            written: text.to_string(),
            with_seconds,
        })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

deserialize_from_str!(Duration, Size, Schedule);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_spec_units() {
        for (text, secs) in [
            ("90s", 90),
            ("5m", 300),
            ("2h", 7200),
            ("4d", 345_600),
            ("1h30m", 5400),
        ] {
            assert_eq!(
                text.parse::<Duration>().map(|d| d.0.as_secs()),
                Ok(secs),
                "{text}"
            );
        }
    }

    #[test]
    fn a_duration_without_unit_is_refused() {
        let err = "5".parse::<Duration>().unwrap_err();
        assert!(err.starts_with("invalid duration \"5\""), "{err}");
        assert!("soon".parse::<Duration>().is_err());
        assert!("-5m".parse::<Duration>().is_err());
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!("512MiB".parse::<Size>(), Ok(Size(512 * 1024 * 1024)));
        assert_eq!("1GB".parse::<Size>(), Ok(Size(1_000_000_000)));
        assert!("lots".parse::<Size>().is_err());
        assert!("12 parsecs".parse::<Size>().is_err());
    }

    #[test]
    fn cron_takes_five_or_six_fields() {
        assert_eq!(
            "*/5 * * * *"
                .parse::<Schedule>()
                .map(|s| s.cron().to_string()),
            Ok("0 */5 * * * *".to_string())
        );
        assert_eq!(
            "30 3 * * * *"
                .parse::<Schedule>()
                .map(|s| s.cron().to_string()),
            Ok("30 3 * * * *".to_string())
        );
        assert!("* * *".parse::<Schedule>().is_err());
        assert!("61 * * * *".parse::<Schedule>().is_err());
    }

    #[test]
    fn next_after_follows_the_schedule() {
        let s: Schedule = "*/5 * * * *".parse().unwrap();
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:01:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            s.next_after(t).map(|n| n.to_rfc3339()),
            Some("2026-01-01T00:05:00+00:00".to_string())
        );
    }
}
