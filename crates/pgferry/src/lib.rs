//! The shared library of pgferry: settings, the bundle format, the subprocess runner, job
//! locks and history, alerts, logging and exit codes. No terminal code lives here.
//!
//! The main types:
//! - [`settings::SenderSettings`], [`settings::ReceiverSettings`]: the parsed configs;
//!   [`settings::ConfigError`] names the file, line and key of a bad one.
//! - [`bundle::BundleName`] (kind and creation time, sortable), [`bundle::Manifest`] (what a
//!   bundle holds, with every entry's SHA-256), [`bundle::writer::BundleWriter`] and
//!   [`bundle::reader::verify`]/[`bundle::reader::read_entries`].
//! - [`seal::Seal`] signs and encrypts bundles on the sender; [`seal::OpenKeys`] checks and
//!   opens them on a receiver.
//! - [`pg::Psql`] (one-shot `psql`), [`pg::Session`] (a kept `psql`, the sender's snapshot),
//!   [`pg::catalog`] and [`pg::dependencies`]: what both sides ask the catalog.
//! - [`job::Jobs`]: runs a job under its lock, keeps its [`history::JobHistory`], alerts by
//!   [`alert`], and refreshes the [`metrics`] textfile; [`daemon`] schedules jobs.
//! - [`exit::Exit`]: the process exit codes, chosen from the error chain.

pub mod alert;
pub mod atomic_file;
pub mod bundle;
pub mod cause;
pub mod checks;
pub mod daemon;
pub mod exit;
pub mod history;
pub mod job;
pub mod last_bundles;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod pg;
pub mod pipe;
pub mod process;
pub mod progress;
pub mod report;
pub mod seal;
pub mod settings;
pub mod sftp;
pub mod store;
pub mod watermark;
