//! The receiver's jobs. `main.rs` only dispatches to `commands`; each step of a job lives
//! in a module named after it.
//!
//! A load: [`inbox`] (pending bundles) → [`supersede`] (start at the newest complete) →
//! for each bundle: verify → [`ledger`] lookup → [`plan`] (what to create, reuse, replace;
//! [`refused::Refused`] when the target cannot take it, then [`blocked`]) → [`apply`] (one
//! `psql` transaction: [`ddl`], [`dump_filter`] or [`csv_to_copy`] and [`upsert`],
//! [`triggers`], [`post_data`], the ledger row) → [`install`] (files) → [`hook`]. Then
//! [`prune`]; the daemon adds [`staleness`].

pub mod apply;
pub mod blocked;
pub mod commands;
pub mod csv_to_copy;
pub mod ddl;
pub mod dump_filter;
pub mod dump_syntax;
pub mod hook;
pub mod inbox;
pub mod install;
pub mod ledger;
pub mod metrics;
pub mod plan;
pub mod post_data;
pub mod prune;
pub mod refused;
pub mod schema_diff;
pub mod staleness;
pub mod supersede;
pub mod triggers;
pub mod upsert;
