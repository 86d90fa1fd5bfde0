//! The receiver's jobs. `main.rs` only dispatches to `commands`; each step of a job lives
//! in a module named after it.
//!
//! A load: [`fetch`] (with an S3 inbox, the new bundles from the store) → [`inbox`] (pending bundles) → [`supersede`] (start at the newest complete) →
//! for each bundle: verify → [`load::ledger`] lookup → [`load::plan`] (what to create,
//! reuse, replace; [`load::refused::Refused`] when the target cannot take it, then
//! [`blocked`]) → [`load::apply`] (one `psql` transaction: [`load::ddl`],
//! [`load::dump_filter`] or [`load::csv_to_copy`] and [`load::upsert`], [`load::triggers`],
//! [`load::post_data`], the ledger row) → [`install`] (files) → [`hook`]. Then [`prune`];
//! the daemon adds [`staleness`].

pub mod blocked;
pub mod commands;
pub mod fetch;
pub mod hook;
pub mod inbox;
pub mod install;
pub mod load;
pub mod metrics;
pub mod prune;
pub mod staleness;
pub mod supersede;
