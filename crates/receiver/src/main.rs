//! `receiver`: runs on the secondary. Parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgferry_cli::GlobalArgs;
use receiver::commands;

/// Loads the bundles that `sender` uploads into this secondary PostgreSQL server.
#[derive(Debug, Parser)]
#[command(name = "receiver", version, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Job(Job),
    #[command(flatten)]
    About(pgferry_cli::About),
}

/// The commands that read the config: jobs, checks and reports.
#[derive(Debug, Subcommand)]
enum Job {
    /// Self-test: config, psql, database, inbox and file dirs writable, free disk, state
    /// dir. Prints ok/warn/FAIL per item; exits 1 if anything failed
    Check,
    /// Apply every pending bundle in the inbox, oldest first: verify it, load it in one
    /// transaction, install its files, run the postprocess hook; then prune
    Load {
        /// Apply only the oldest pending bundle
        #[arg(long)]
        once: bool,
    },
    /// Check a bundle's integrity and print its manifest; changes nothing. With the config's
    /// [bundle] keys, also its signature, and an encrypted bundle is opened
    Verify {
        /// Path of the bundle file
        bundle: std::path::PathBuf,
    },
    /// Apply the retention policy now: delete old applied and failed bundles
    Prune,
    /// Daemon: run load and prune on their [schedule], and alert when nothing was applied
    /// for schedule.stale_after, until SIGTERM or SIGINT (a running job is let finish)
    Run,
    /// Show the last applied bundles, pending and failed counts, the lag, and each job's
    /// last success and failure
    Status {
        /// Print JSON instead of text
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Print the metrics in Prometheus' text format, as [metrics] textfile holds them
        #[arg(long)]
        prometheus: bool,
    },
}

/// The config file when neither `-c` nor `$PGFERRY_CONFIG` names one.
const DEFAULT_CONFIG: &str = "/etc/pgferry/receiver.toml";

fn main() -> ExitCode {
    let cli: Cli = pgferry_cli::parse(DEFAULT_CONFIG);
    let result = match cli.command {
        Command::About(about) => pgferry_cli::about::<Cli>(DEFAULT_CONFIG, about),
        Command::Job(job) => run(job, &cli.global),
    };
    pgferry_cli::finish(result)
}

/// A command that reads the config: logging first, then the command.
fn run(job: Job, global: &GlobalArgs) -> anyhow::Result<pgferry::exit::Exit> {
    // Test builds only: FAILPOINTS=name=return makes the named step kill the process.
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let options = global.init();
    let config = global.config_path(DEFAULT_CONFIG);
    match job {
        Job::Check => commands::check::run(&config),
        Job::Load { once } => commands::load::run(&config, once, &options),
        Job::Verify { bundle } => commands::verify::run(&config, &bundle),
        Job::Prune => commands::prune::run(&config, &options),
        Job::Run => commands::run::run(&config, &options),
        Job::Status { json, prometheus } => commands::status::run(&config, json, prometheus),
    }
}
