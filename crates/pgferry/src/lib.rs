//! The shared library of pgferry: settings, the bundle format, the subprocess runner, job
//! locks and history, alerts, logging and exit codes. No terminal code lives here.

pub mod alert;
pub mod atomic_file;
pub mod bundle;
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
pub mod report;
pub mod settings;
pub mod sftp;
pub mod watermark;
