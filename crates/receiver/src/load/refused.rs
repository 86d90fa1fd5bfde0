//! Why the target refused a bundle's content. Loading the same bundle again fails the
//! same way, so such a bundle blocks the queue (see [`crate::blocked`]) until the target
//! is fixed or a complete bundle supersedes it. Other failures (the database down, a full
//! disk, a killed load) are worth retrying as they are.

/// psql's exit status when a statement of its script failed (`ON_ERROR_STOP`), as opposed
/// to 2, a connection that went bad.
pub const PSQL_SCRIPT_ERROR: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The bundle's tables differ from the target's, or are missing there (guarantee 6).
    #[error("{0}")]
    Schema(String),
    /// The target rejected one of the bundle's statements: a constraint, a type, a value.
    #[error("load into {target} failed, nothing was changed ({status}): {message}")]
    Statement {
        target: String,
        status: String,
        message: String,
    },
}

impl Refused {
    /// The refusal somewhere in `err`'s chain, if the failure was one.
    pub fn find(err: &anyhow::Error) -> Option<&Refused> {
        err.chain()
            .find_map(|cause| cause.downcast_ref::<Refused>())
    }
}
