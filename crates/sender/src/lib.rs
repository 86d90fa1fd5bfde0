//! The sender's jobs. `main.rs` only dispatches to `commands`; each step of a job lives in
//! a module named after it.
//!
//! A complete bundle: [`snapshot::Snapshot`] (one exported snapshot, and the [`horizon`] of
//! open transactions) → [`tables`] (names resolved, partition trees whole) → [`dump`]
//! (`pg_dump` schema and data) and [`pack`] (files) → [`publish`] (stream, rename, move the
//! mark). A partial: the same snapshot → [`partial_tables`] (the configured tables,
//! checked) → [`window`] → [`selection`] (changed rows and their parents) → [`rows`]
//! (`COPY` as CSV) and [`pack`] (the files they name) → [`publish`].

pub mod changes;
pub mod commands;
pub mod dump;
pub mod horizon;
pub mod logical;
pub mod metrics;
pub mod pack;
pub mod partial_tables;
pub mod publish;
pub mod rows;
pub mod selection;
pub mod slot;
pub mod snapshot;
pub mod tables;
pub mod window;
