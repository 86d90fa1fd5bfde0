//! `sender`: runs on the primary. Parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pgferry_cli::GlobalArgs;
use sender::commands;

/// Ships PostgreSQL tables and files from this primary server to a secondary one over SFTP.
#[derive(Debug, Parser)]
#[command(name = "sender", version, propagate_version = true)]
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
    /// Self-test: config, pg_dump/psql, database, tables and their changed_at columns, file
    /// dirs, SSH key and state dir. Prints ok/warn/FAIL per item; exits 1 if anything failed
    Check,
    /// Make one complete bundle now (every configured table and file, from one snapshot)
    /// and upload it to the receiver's inbox
    Complete,
    /// Make one partial bundle now: the rows changed since the last successful partial or
    /// complete (minus partial.overlap), the rows they reference, and the files they need
    Partial {
        /// Send the rows changed in the last N minutes instead (the original fixed window;
        /// a gap longer than N minutes loses rows)
        #[arg(long, value_name = "N")]
        minutes: Option<u32>,
    },
    /// Connectivity check, meant for every hour: TCP, SSH handshake, host key against
    /// known_hosts, key authentication, inbox mkdir, write/read/delete of a probe file, free
    /// space. Prints each step with its duration; a failure alerts
    CheckRemote,
    /// Remove the replication slot and the publication that [partial] source = "logical"
    /// made on the primary (when moving back to changed_at, or decommissioning): a slot no
    /// one reads keeps WAL on the primary until its disk fills
    DropSlot,
    /// Daemon: run complete, partial and check-remote on their [schedule] until SIGTERM or
    /// SIGINT (a running job is let finish)
    Run,
    /// Show each job's last success and failure, and the partial high-water mark
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
const DEFAULT_CONFIG: &str = "/etc/pgferry/sender.toml";

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
        Job::Complete => commands::complete::run(&config, &options),
        Job::Partial { minutes } => commands::partial::run(&config, minutes, &options),
        Job::CheckRemote => commands::check_remote::run(&config, &options),
        Job::Run => commands::run::run(&config, &options),
        Job::DropSlot => commands::drop_slot::run(&config),
        Job::Status { json, prometheus } => commands::status::run(&config, json, prometheus),
    }
}
