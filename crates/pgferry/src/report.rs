//! The `check` commands' report: one line per item with `ok`, `warn` or `FAIL`.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub status: Status,
    pub subject: String,
    pub detail: String,
}

/// Collects the items of a check and prints each as it comes, so a slow step shows where
/// the check is.
#[derive(Debug, Default)]
pub struct Report {
    pub items: Vec<Item>,
    pub quiet: bool,
}

impl Report {
    pub fn new() -> Report {
        Report::default()
    }

    pub fn add(&mut self, status: Status, subject: impl Into<String>, detail: impl Into<String>) {
        let item = Item {
            status,
            subject: subject.into(),
            detail: detail.into(),
        };
        if !self.quiet {
            println!("{:<4} {}: {}", item.status, item.subject, item.detail);
        }
        self.items.push(item);
    }

    pub fn ok(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.add(Status::Ok, subject, detail);
    }

    pub fn warn(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.add(Status::Warn, subject, detail);
    }

    pub fn fail(&mut self, subject: impl Into<String>, detail: impl Into<String>) {
        self.add(Status::Fail, subject, detail);
    }

    pub fn failed(&self) -> bool {
        self.items.iter().any(|i| i.status == Status::Fail)
    }

    pub fn summary(&self) -> String {
        let count = |s| self.items.iter().filter(|i| i.status == s).count();
        format!(
            "check: {} ok, {} warnings, {} failed",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail)
        )
    }
}
