//! One module per `receiver` subcommand.

pub mod check;
pub mod load;
pub mod prune;
pub mod run;
pub mod status;
pub mod verify;
