//! Exit codes of both binaries (SPEC "Commands"), decided in one place from the error.

use crate::settings::ConfigError;

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

    /// The exit status for an error chain: configuration and usage errors are 2, a held
    /// lock is 75, everything else is a failed job.
    pub fn for_error(err: &anyhow::Error) -> Exit {
        for cause in err.chain() {
            if cause.downcast_ref::<ConfigError>().is_some() {
                return Exit::Usage;
            }
            if cause.downcast_ref::<crate::lock::LockHeld>().is_some() {
                return Exit::Locked;
            }
        }
        Exit::Failed
    }
}
