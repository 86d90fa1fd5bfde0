//! The sender's jobs. `main.rs` only dispatches to `commands`; each step of a job lives in
//! a module named after it.

pub mod commands;
pub mod dump;
pub mod horizon;
pub mod metrics;
pub mod pack;
pub mod publish;
pub mod rows;
pub mod selection;
pub mod snapshot;
pub mod tables;
pub mod upload;
pub mod window;
