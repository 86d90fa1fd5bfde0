//! One module per `sender` subcommand.

pub mod check;
pub mod check_remote;
pub mod complete;
pub mod drop_slot;
pub mod partial;
pub mod run;
pub mod status;
