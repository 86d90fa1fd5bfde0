//! One module per `sender` subcommand.

pub mod check;
pub mod complete;
pub mod partial;
