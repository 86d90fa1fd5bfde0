//! Where a partial bundle's window starts and ends (guarantee 4). By default it starts at
//! the high-water mark minus the overlap, so a missed or failed run loses nothing; a fixed
//! "last N minutes" window is there for those who want the original behaviour.

use chrono::{DateTime, Duration, Utc};
use pgferry::settings::SenderSettings;
use pgferry::watermark;

/// `(start, end]`: rows whose `changed_at` falls in it are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// How the start was chosen, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    HighWaterMark,
    Fixed,
    /// No high-water mark yet: the fixed window (default 5m) stands in for it.
    NoHighWaterMark,
}

/// The window ending at `end` (the snapshot's clock).
pub fn choose(
    end: DateTime<Utc>,
    high_water_mark: Option<DateTime<Utc>>,
    overlap: Duration,
    fixed: Option<Duration>,
) -> (Window, Basis) {
    let default_window = Duration::minutes(5);
    match (fixed, high_water_mark) {
        (Some(minutes), _) => (
            Window {
                start: end - minutes,
                end,
            },
            Basis::Fixed,
        ),
        (None, Some(mark)) => (
            Window {
                start: (mark - overlap).min(end),
                end,
            },
            Basis::HighWaterMark,
        ),
        (None, None) => (
            Window {
                start: end - default_window,
                end,
            },
            Basis::NoHighWaterMark,
        ),
    }
}

/// Where the high-water mark goes once the bundle of `window` is published, or `None` to
/// leave it. A fixed window that starts after the mark leaves a gap its rows never cover;
/// keeping the mark lets the next default-mode partial still send them.
pub fn next_mark(
    window: Window,
    basis: Basis,
    mark: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    match (basis, mark) {
        (Basis::Fixed, Some(mark)) if window.start > mark => None,
        _ => Some(window.end),
    }
}

/// The window, and where the high-water mark goes once its bundle is published.
pub fn for_partial(
    settings: &SenderSettings,
    end: DateTime<Utc>,
    minutes: Option<u32>,
) -> anyhow::Result<(Window, Option<DateTime<Utc>>)> {
    let mark = watermark::read(&settings.state.dir)?.map(|w| w.high_water_mark);
    let fixed = minutes
        .map(|m| chrono::Duration::minutes(i64::from(m)))
        .or(settings.partial.window.map(|w| w.as_chrono()));
    let (window, basis) = choose(end, mark, settings.partial.overlap.as_chrono(), fixed);
    let next_mark = next_mark(window, basis, mark);
    if next_mark.is_none() {
        tracing::warn!(
            window_start = %window.start.to_rfc3339(),
            "the fixed window starts after the high-water mark, so rows changed in between are not sent; the mark stays where it is so the next partial without --minutes sends them"
        );
    }
    if basis == Basis::NoHighWaterMark {
        tracing::warn!(
            window_start = %window.start.to_rfc3339(),
            "no high-water mark yet (no partial or complete was published from {}); sending the last 5 minutes. hint: run `sender complete` first",
            settings.state.dir.display()
        );
    }
    Ok((window, next_mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn the_window_starts_at_the_mark_minus_the_overlap() {
        let (w, basis) = choose(
            at("2026-01-01T12:00:00Z"),
            Some(at("2026-01-01T10:00:00Z")),
            Duration::minutes(2),
            None,
        );
        assert_eq!(w.start, at("2026-01-01T09:58:00Z"));
        assert_eq!(w.end, at("2026-01-01T12:00:00Z"));
        assert_eq!(basis, Basis::HighWaterMark);
    }

    #[test]
    fn a_fixed_window_ignores_the_mark() {
        let (w, basis) = choose(
            at("2026-01-01T12:00:00Z"),
            Some(at("2026-01-01T10:00:00Z")),
            Duration::minutes(2),
            Some(Duration::minutes(1)),
        );
        assert_eq!(w.start, at("2026-01-01T11:59:00Z"));
        assert_eq!(basis, Basis::Fixed);
    }

    #[test]
    fn without_a_mark_the_default_window_is_five_minutes() {
        let (w, basis) = choose(at("2026-01-01T12:00:00Z"), None, Duration::minutes(2), None);
        assert_eq!(w.start, at("2026-01-01T11:55:00Z"));
        assert_eq!(basis, Basis::NoHighWaterMark);
    }

    #[test]
    fn a_mark_in_the_future_never_makes_an_inverted_window() {
        let (w, _) = choose(
            at("2026-01-01T12:00:00Z"),
            Some(at("2026-01-01T13:00:00Z")),
            Duration::zero(),
            None,
        );
        assert_eq!(w.start, w.end);
    }

    #[test]
    fn a_fixed_window_with_a_gap_leaves_the_mark() {
        let mark = Some(at("2026-01-01T10:00:00Z"));
        let (gap, basis) = choose(
            at("2026-01-01T12:00:00Z"),
            mark,
            Duration::minutes(2),
            Some(Duration::minutes(1)),
        );
        assert_eq!(next_mark(gap, basis, mark), None);
        let (covering, basis) = choose(
            at("2026-01-01T10:00:30Z"),
            mark,
            Duration::minutes(2),
            Some(Duration::minutes(1)),
        );
        assert_eq!(
            next_mark(covering, basis, mark),
            Some(at("2026-01-01T10:00:30Z"))
        );
        let (default, basis) = choose(at("2026-01-01T12:00:00Z"), mark, Duration::minutes(2), None);
        assert_eq!(
            next_mark(default, basis, mark),
            Some(at("2026-01-01T12:00:00Z"))
        );
    }
}
