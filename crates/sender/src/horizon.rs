//! How far a bundle's window may reach (guarantee 4). A transaction still open at the
//! snapshot writes rows the snapshot cannot see, stamped with a `changed_at` from before it
//! (`now()` is the transaction's start), and commits later. If the window ended at the
//! snapshot, the next one (from that end minus the overlap) would start after those rows,
//! and a transaction open longer than the overlap would lose them. So the window's end, and
//! the high-water mark with it, never passes the start of a transaction in progress at the
//! snapshot, however long it stays open.

use chrono::{DateTime, Utc};
use pgferry::pg::{Psql, Session};
use pgferry::watermark::HeldBack;
use serde::Deserialize;

/// `application_name` of the session that holds a bundle's snapshot. Like `pg_dump`'s, its
/// transaction is read only, so it never holds a window back.
pub const SNAPSHOT_APPLICATION: &str = "pgferry-snapshot";

/// The resolution of PostgreSQL's timestamps.
const TICK: chrono::Duration = chrono::Duration::microseconds(1);

/// The open transactions of the source database, read just before the snapshot.
#[derive(Debug, Clone, Deserialize)]
pub struct Horizon {
    /// The start of the statement that looked: any transaction in progress at the snapshot
    /// that began before this was open while it looked, so it is `oldest` or younger.
    pub observed_at: DateTime<Utc>,
    /// The oldest transaction of another session then open in this database.
    pub oldest: Option<OpenTransaction>,
    /// Whether the role sees every session's transaction (`pg_read_all_stats`): without
    /// it, the transactions of other roles are invisible and cannot hold a window back.
    pub sees_all: bool,
    /// The role that looked.
    pub role: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpenTransaction {
    pub pid: i32,
    pub application_name: String,
    pub xact_start: DateTime<Utc>,
}

/// Read-only sessions never write rows, so they are left out: `pg_dump` (this sender's own
/// complete bundles, or backups) and this sender's snapshots.
const SQL: &str = "SELECT json_build_object(\
    'observed_at', now(), \
    'sees_all', pg_has_role('pg_read_all_stats', 'USAGE'), \
    'role', current_user, \
    'oldest', (SELECT json_build_object('pid', pid, 'application_name', application_name, 'xact_start', xact_start) \
        FROM pg_stat_activity \
        WHERE datname = current_database() AND pid <> pg_backend_pid() \
          AND backend_type = 'client backend' AND xact_start IS NOT NULL \
          AND application_name NOT IN ('pg_dump', 'pgferry-snapshot') \
        ORDER BY xact_start LIMIT 1))";

impl Horizon {
    /// Looks at the open transactions; run outside a transaction, right before the snapshot.
    pub fn read(session: &mut Session) -> anyhow::Result<Horizon> {
        session.json(SQL)
    }

    /// Looks at the open transactions now, on a connection of its own (`check`).
    pub fn query(psql: &Psql) -> anyhow::Result<Horizon> {
        psql.json(SQL)
    }

    /// Where a window of the snapshot taken at `snapshot` may end, and the transaction that
    /// holds it short of the snapshot, if one does. A window is `(start, end]`, so it ends
    /// one tick (PostgreSQL's microsecond) before that transaction began: the next window,
    /// starting there, takes the rows stamped with the transaction's own `now()`.
    pub fn limit(&self, snapshot: DateTime<Utc>) -> (DateTime<Utc>, Option<HeldBack>) {
        let end = snapshot.min(self.observed_at);
        match &self.oldest {
            Some(open) if open.xact_start <= end => (
                open.xact_start - TICK,
                Some(HeldBack {
                    pid: open.pid,
                    application_name: open.application_name.clone(),
                    since: open.xact_start,
                    snapshot,
                }),
            ),
            _ => (end, None),
        }
    }
}

/// Logs a window held back by a long transaction: the operator sees why partials resend.
pub fn log(held: &HeldBack) {
    let by = humantime::format_duration(held.by().to_std().unwrap_or_default()).to_string();
    if held.is_long() {
        tracing::warn!(pid = held.pid, application = %held.application_name, since = %held.since.to_rfc3339(), held_back = %by,
            "a transaction open for over an hour holds the partial window back; every partial resends what changed since it began");
    } else {
        tracing::info!(pid = held.pid, application = %held.application_name, since = %held.since.to_rfc3339(), held_back = %by,
            "an open transaction holds the window's end back until it ends, so its rows are not lost");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn horizon(oldest: Option<&str>) -> Horizon {
        Horizon {
            observed_at: at("2026-01-01T12:00:00Z"),
            oldest: oldest.map(|start| OpenTransaction {
                pid: 42,
                application_name: "batch".into(),
                xact_start: at(start),
            }),
            sees_all: true,
            role: "pgferry".into(),
        }
    }

    #[test]
    fn the_end_stops_at_the_oldest_open_transaction() {
        let (end, held) = horizon(Some("2026-01-01T10:30:00Z")).limit(at("2026-01-01T12:00:01Z"));
        assert_eq!(end, at("2026-01-01T10:29:59.999999Z"));
        let held = held.unwrap();
        assert_eq!((held.pid, held.since), (42, at("2026-01-01T10:30:00Z")));
        assert!(held.is_long());
    }

    #[test]
    fn without_an_older_transaction_the_end_is_when_it_looked() {
        assert_eq!(
            horizon(None).limit(at("2026-01-01T12:00:01Z")),
            (at("2026-01-01T12:00:00Z"), None)
        );
        let (end, held) = horizon(Some("2026-01-01T12:00:00.5Z")).limit(at("2026-01-01T12:00:01Z"));
        assert_eq!((end, held), (at("2026-01-01T12:00:00Z"), None));
    }

    #[test]
    fn an_hour_or_less_is_not_long() {
        let (_, held) = horizon(Some("2026-01-01T11:00:00Z")).limit(at("2026-01-01T12:00:00Z"));
        assert!(!held.unwrap().is_long());
    }
}
