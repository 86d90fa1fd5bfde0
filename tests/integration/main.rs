//! End-to-end tests of pgferry against real PostgreSQL clusters, a real sshd and a real SMTP
//! server, all started by `scripts/testenv.sh` (run the suite with `scripts/test.sh`).
//!
//! The helpers a test reads with: `util::Env` (the running test environment), `util::Db`
//! (a database of its own on the primary or secondary cluster, `sql`, `kept_session`,
//! `hold_lock`), `util::Scratch` (its own directory and inbox), `run_config`/`Run` (a binary
//! run and its exit code, stdout and stderr), and `ferry::Ferry` (a primary, a secondary and
//! the configs that join them: `ship`, `ship_partial`, `assert_same`, `ledger`).

#![allow(clippy::unwrap_used)]

mod util;

mod check;
mod complete;
mod compression;
mod config;
mod faults;
mod ferry;
mod hostile_bundles;
mod hostile_config;
mod hostile_crash;
mod hostile_disk;
mod hostile_link;
mod hostile_ops;
mod hostile_pg;
mod logical;
mod long_transaction;
mod metrics;
mod operations;
mod partial;
mod pgoutput;
mod progress;
mod recovery;
mod remote;
mod replace;
mod s3;
mod schemas;
mod sealed;
mod store;
