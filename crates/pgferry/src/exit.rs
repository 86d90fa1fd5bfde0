//! Exit codes of both binaries (SPEC "Commands"), decided in one place from the error.

use crate::cause::Cause;

/// What a command's process exit status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done, also "nothing new".
    Done = 0,
    /// The job failed (an alert was sent).
    Failed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Skipped: another run of the same job holds its lock.
    Locked = 75,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The exit status for an error chain, from its cause: configuration and usage errors
    /// are 2, a held lock is 75, everything else is a failed job.
    pub fn for_error(err: &anyhow::Error) -> Exit {
        Cause::of(err).map_or(Exit::Failed, Cause::exit)
    }
}
